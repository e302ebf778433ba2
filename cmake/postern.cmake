# Helpers shared by every area's CMakeLists.txt.

# postern_unit_test(NAME SOURCES... LIBS libs...)
# A cmocka test binary in build/tests/, registered with CTest under "unit/NAME".
function(postern_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME unit/${name} COMMAND ${name})
  set_tests_properties(unit/${name} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

# postern_fuzz_target(NAME SOURCE LIBS libs... CORPUS dir)
# With POSTERN_FUZZ (clang): a libFuzzer binary build/fuzz/NAME.
# Always: a replay binary that feeds every file of the seed corpus to
# LLVMFuzzerTestOneInput, registered with CTest as "fuzz/NAME".
function(postern_fuzz_target name)
  cmake_parse_arguments(F "" "SOURCE;CORPUS" "LIBS" ${ARGN})
  add_executable(${name}_replay ${F_SOURCE} ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.c)
  set_target_properties(${name}_replay PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_include_directories(${name}_replay PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(${name}_replay PRIVATE ${F_LIBS})
  add_test(NAME fuzz/${name} COMMAND ${name}_replay ${F_CORPUS})
  set_tests_properties(fuzz/${name} PROPERTIES LABELS fuzz TIMEOUT 300)
  if(POSTERN_FUZZ)
    add_executable(${name}_fuzz ${F_SOURCE})
    set_target_properties(${name}_fuzz PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
    target_include_directories(${name}_fuzz PRIVATE ${CMAKE_SOURCE_DIR})
    target_compile_options(${name}_fuzz PRIVATE -fsanitize=fuzzer)
    target_link_options(${name}_fuzz PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name}_fuzz PRIVATE ${F_LIBS})
  endif()
endfunction()

# postern_pytest(NAME FILE [TIMEOUT s] [LABELS l])
# Registers one pytest file (integration or interop) with CTest. The tests
# find the built programs through POSTERN_BIN.
function(postern_pytest name file)
  cmake_parse_arguments(P "" "TIMEOUT" "LABELS" ${ARGN})
  if(NOT P_TIMEOUT)
    set(P_TIMEOUT 600)
  endif()
  add_test(NAME ${name}
           COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_SOURCE_DIR}/${file})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${P_TIMEOUT} LABELS "${P_LABELS}"
    ENVIRONMENT "POSTERN_BIN=${CMAKE_BINARY_DIR}/bin;POSTERN_SRC=${CMAKE_SOURCE_DIR};ASAN_OPTIONS=detect_leaks=0:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endfunction()
