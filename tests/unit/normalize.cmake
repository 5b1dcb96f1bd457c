# Unit tests of the grouping-key normalizers (worker/normalize.c and
# worker/phone.cc); the expected E.164 keys were checked against
# libphonenumber 8.12.57 itself.
add_executable(test_normalize ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_normalize.c)
target_link_libraries(test_normalize PRIVATE cmcore PkgConfig::CMOCKA
                      Threads::Threads)
add_test(NAME unit.normalize COMMAND test_normalize)
