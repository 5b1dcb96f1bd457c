# Unit tests of clinicmig's own streams in Avro (worker/avro_out.c) and of
# schema registration (worker/schemas.c), against a schema registry the
# test serves itself (libmicrohttpd).
add_executable(test_avro_out ${CMAKE_CURRENT_LIST_DIR}/test_avro_out.c)
target_link_libraries(test_avro_out PRIVATE cmcore PkgConfig::CMOCKA
                      PkgConfig::MHD Threads::Threads)
add_test(NAME unit.avro_out COMMAND test_avro_out)
