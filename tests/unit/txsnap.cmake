# Unit tests of transaction snapshots and visibility (worker/txsnap.c).
add_executable(test_txsnap ${CMAKE_CURRENT_LIST_DIR}/test_txsnap.c)
target_link_libraries(test_txsnap PRIVATE cmcore PkgConfig::CMOCKA)
add_test(NAME unit.txsnap COMMAND test_txsnap)
