# Unit tests of the Avro decoder (worker/decode_avro.c) and the schema
# source (worker/schemas.c) on messages built byte by byte, and
# schemas/replay.avsc against the catalog.
add_executable(test_decode_avro ${CMAKE_CURRENT_LIST_DIR}/test_decode_avro.c)
target_link_libraries(test_decode_avro PRIVATE cmcore PkgConfig::CMOCKA
  PkgConfig::AVRO)
target_compile_definitions(test_decode_avro PRIVATE
  CM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_test(NAME unit.decode_avro COMMAND test_decode_avro)
