# Run by ctest: install the build tree's package into a scratch prefix and build a consumer.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix}
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
                        -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix}
                        -DQUICK_START=${QUICK_START} -DWITH_PROMETHEUS=${WITH_PROMETHEUS}
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer against the installed package failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${WORK_DIR}/build/consumer RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the consumer exited with ${rc}")
endif()
if(WITH_PROMETHEUS)
  execute_process(COMMAND ${WORK_DIR}/build/prometheus_consumer RESULT_VARIABLE rc TIMEOUT 60)
  if(rc)
    message(FATAL_ERROR "the ringflow::prometheus consumer exited with ${rc}")
  endif()
endif()

# The quick start, run from a folder outside the source tree: with its defaults, then with the
# installed copy of configs/default.toml (found through the package's RINGFLOW_CONFIG_DIR).
if(QUICK_START)
  file(READ ${WORK_DIR}/build/config_dir.txt config_dir)
  if(NOT EXISTS ${config_dir}/default.toml)
    message(FATAL_ERROR "the package does not install configs/default.toml (${config_dir})")
  endif()
  foreach(args IN ITEMS "" "${config_dir}/default.toml")
    execute_process(COMMAND ${WORK_DIR}/build/quick_start ${args} WORKING_DIRECTORY ${WORK_DIR}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 60)
    message(STATUS "quick_start ${args}: ${out}")
    if(NOT rc STREQUAL "0" OR NOT out MATCHES "1000 orders: ")
      message(FATAL_ERROR "the installed quick start (${args}) exited with ${rc}:\n${out}")
    endif()
  endforeach()
endif()
