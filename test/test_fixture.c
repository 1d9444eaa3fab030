#include "test.h"
void test_fixture(void) {}
