# Unit tests of the Debezium event decoder (worker/decode.c) and its JSON
# form (worker/event_json.c), on the fixtures in tests/data/decode/.
add_executable(test_decode ${CMAKE_CURRENT_LIST_DIR}/test_decode.c)
target_link_libraries(test_decode PRIVATE cmcore PkgConfig::CMOCKA)
target_compile_definitions(test_decode PRIVATE
  CM_TEST_DATA_DIR="${CMAKE_SOURCE_DIR}/tests/data")
add_test(NAME unit.decode COMMAND test_decode)
