# Run by ctest (tools_wal_cli): ringflow-wal on logs written by ringflow_wal_fixture, and at its
# edges (usage errors, --version, a missing key).
#
#   cmake -DWAL=<ringflow-wal> -DFIXTURE=<ringflow_wal_fixture> -DVERSION=<x.y.z>
#         -DWORK_DIR=<scratch> -P wal_cli_test.cmake
cmake_minimum_required(VERSION 3.25)

set(failures 0)

# expect(NAME <what> RC <code> [MATCH <regex>...] [NOMATCH <regex>...] COMMAND <cmd>...)
function(expect)
  cmake_parse_arguments(E "" "NAME;RC" "MATCH;NOMATCH;COMMAND" ${ARGN})
  execute_process(COMMAND ${E_COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out TIMEOUT 30)
  set(bad "")
  if(NOT rc STREQUAL E_RC)
    set(bad "exit code ${rc}, expected ${E_RC}")
  endif()
  foreach(re IN LISTS E_MATCH)
    if(NOT out MATCHES "${re}")
      string(APPEND bad "; output lacks /${re}/")
    endif()
  endforeach()
  foreach(re IN LISTS E_NOMATCH)
    if(out MATCHES "${re}")
      string(APPEND bad "; output has /${re}/")
    endif()
  endforeach()
  if(bad STREQUAL "")
    message(STATUS "ok: ${E_NAME}")
  else()
    math(EXPR n "${failures} + 1")
    set(failures ${n} PARENT_SCOPE)
    message(SEND_ERROR "FAILED: ${E_NAME}: ${bad}\n  command: ${E_COMMAND}\n  output:\n${out}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${FIXTURE} ${WORK_DIR} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "ringflow_wal_fixture failed: ${rc}")
endif()
string(REPLACE "." "\\." version_re "${VERSION}")
set(key ${WORK_DIR}/key.hex)

# ---- usage
expect(NAME "--version" RC 0 MATCH "^ringflow-wal ${version_re}\n" COMMAND ${WAL} --version)
expect(NAME "no subcommand" RC 2 MATCH "subcommand" COMMAND ${WAL})
expect(NAME "unknown subcommand" RC 2 MATCH "frobnicate" COMMAND ${WAL} frobnicate ${WORK_DIR})
expect(NAME "no directory" RC 2 MATCH "dir" COMMAND ${WAL} inspect)
expect(NAME "not a directory" RC 2 MATCH "is not a directory"
       COMMAND ${WAL} inspect ${WORK_DIR}/missing)
expect(NAME "--key-file and --key-env together" RC 2 MATCH "excludes"
       COMMAND ${WAL} inspect ${WORK_DIR}/enc --key-file ${key} --key-env HOME)
expect(NAME "a bad key file" RC 2 MATCH "32 raw bytes or 64 hex digits"
       COMMAND ${WAL} inspect ${WORK_DIR}/enc --key-file ${FIXTURE})
expect(NAME "--help" RC 0 MATCH "inspect" "verify" "dump" COMMAND ${WAL} --help)

# ---- a healthy log
expect(NAME "inspect plain" RC 0
       MATCH "p0: [0-9]+ segments, 100 records, offsets 0\\.\\.99, next offset 100"
             "p2: 1 segments, 10 records, offsets 0\\.\\.9"
       NOMATCH "PROBLEMS"
       COMMAND ${WAL} inspect ${WORK_DIR}/plain)
expect(NAME "verify plain" RC 0 MATCH "p0: ok, 100 records" "p2: ok, 10 records"
       COMMAND ${WAL} verify ${WORK_DIR}/plain)
expect(NAME "dump plain decodes the record header" RC 0
       MATCH "p0 offset=0 ingest_ns=1000 topic=7 id=65536 attempt=1 key=\"order-0\" payload_len=9 payload=7b22717479223a307d\n"
             "p0 offset=99 " "p2 offset=9 "
       COMMAND ${WAL} dump ${WORK_DIR}/plain)
expect(NAME "dump one partition" RC 0 MATCH "p2 offset=0 " NOMATCH "p0 offset"
       COMMAND ${WAL} dump ${WORK_DIR}/plain --partition 2)

# ---- encrypted
expect(NAME "encrypted without a key" RC 1 MATCH "is encrypted" "wrong_key" "--key-file"
       NOMATCH "offset="
       COMMAND ${WAL} dump ${WORK_DIR}/enc)
expect(NAME "encrypted with the key file" RC 0 MATCH "p0 offset=19 .*key=\"order-19\""
       COMMAND ${WAL} dump ${WORK_DIR}/enc --key-file ${key})
file(READ ${key} key_hex)
string(STRIP "${key_hex}" key_hex)
expect(NAME "encrypted with the key in the environment" RC 0 MATCH "p0: ok, 20 records"
       COMMAND ${CMAKE_COMMAND} -E env RINGFLOW_WAL_TEST_KEY=${key_hex}
               ${WAL} verify ${WORK_DIR}/enc --key-env RINGFLOW_WAL_TEST_KEY)
expect(NAME "encrypted with another key" RC 1 MATCH "was encrypted with key id"
       COMMAND ${CMAKE_COMMAND} -E env
               RINGFLOW_WAL_TEST_KEY=0000000000000000000000000000000000000000000000000000000000000000
               ${WAL} verify ${WORK_DIR}/enc --key-env RINGFLOW_WAL_TEST_KEY)

# ---- a flipped bit
expect(NAME "verify finds the flipped bit with file and byte" RC 1
       MATCH "p0: .*[0-9]+\\.seg: invalid at byte [0-9]+ \\(CRC mismatch\\)" "problem\\(s\\) found"
       COMMAND ${WAL} verify ${WORK_DIR}/corrupt)
expect(NAME "inspect flags the problem" RC 0 MATCH "30 records, offsets 0\\.\\.29" "PROBLEMS"
       COMMAND ${WAL} inspect ${WORK_DIR}/corrupt)
expect(NAME "dump stops before the bad record" RC 0 MATCH "p0 offset=29 " NOMATCH "offset=30 "
       COMMAND ${WAL} dump ${WORK_DIR}/corrupt)
expect(NAME "the tools change nothing" RC 1 MATCH "CRC mismatch"
       COMMAND ${WAL} verify ${WORK_DIR}/corrupt)

if(failures GREATER 0)
  message(FATAL_ERROR "${failures} ringflow-wal check(s) failed")
endif()
