# Run by ctest (demo_leaves_clone_clean): scripts/demo.sh, on the few-seconds smoke scenarios,
# writes its results under an ignored folder whose path it prints, and leaves `git status` of
# the clone as it found it (it once overwrote the committed results/latest).
#
#   cmake -DBENCH=<ringflow-bench> -DSOURCE_DIR=<repo> -P demo_test.cmake
cmake_minimum_required(VERSION 3.25)

find_program(GIT git)
execute_process(COMMAND ${GIT} -C ${SOURCE_DIR} rev-parse --is-inside-work-tree
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(NOT GIT OR rc)
  message(STATUS "demo test skipped: ${SOURCE_DIR} is not a git checkout")
  return()
endif()

function(git_status out_var)
  execute_process(COMMAND ${GIT} -C ${SOURCE_DIR} status --porcelain --untracked-files=all
                  OUTPUT_VARIABLE s RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "git status failed: ${rc}")
  endif()
  set(${out_var} "${s}" PARENT_SCOPE)
endfunction()

git_status(before)
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env --unset=RINGFLOW_DEMO_OUT RINGFLOW_BENCH=${BENCH}
          RINGFLOW_DEMO_SCENARIOS=${SOURCE_DIR}/bench/scenarios/smoke.toml
          bash ${SOURCE_DIR}/scripts/demo.sh --no-progress
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 240)
git_status(after)

if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "scripts/demo.sh exited with ${rc}:\n${out}")
endif()
if(NOT out MATCHES "ringflow: results in ([^ \n]+)/ \\(not tracked by git")
  message(FATAL_ERROR "scripts/demo.sh did not say where its results are:\n${out}")
endif()
set(dir "${CMAKE_MATCH_1}")
if(NOT IS_ABSOLUTE "${dir}")
  set(dir "${SOURCE_DIR}/${dir}")
endif()
set(problems "")
if(NOT EXISTS "${dir}/summary.json")
  string(APPEND problems "\n  no summary.json in ${dir}")
endif()
execute_process(COMMAND ${GIT} -C ${SOURCE_DIR} check-ignore -q "${dir}/summary.json"
                RESULT_VARIABLE ignored)
if(NOT ignored STREQUAL "0")
  string(APPEND problems "\n  ${dir} is not ignored by git")
endif()
if(NOT before STREQUAL after)
  string(APPEND problems "\n  git status changed:\nbefore:\n${before}\nafter:\n${after}")
endif()
file(REMOVE_RECURSE "${dir}")
if(problems)
  message(FATAL_ERROR "make demo would leave the clone dirty:${problems}\noutput:\n${out}")
endif()
message(STATUS "ok: the demo wrote ${dir} (ignored) and left git status unchanged")
