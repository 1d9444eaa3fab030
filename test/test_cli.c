#include "test.h"
void test_cli(void) {}
