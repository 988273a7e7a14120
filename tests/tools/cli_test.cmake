# Run by ctest (tools_cli): the command-line tools at their edges, as a user meets them: inputs
# that are not config files, wrong subcommands and values, --help, --version. Every command runs
# under a timeout, so a tool that blocks (on a FIFO, say) fails this test instead of hanging it.
#
#   cmake -DCONFIG=<ringflow-config> -DTOPO=<ringflow-topo> [-DBENCH=<ringflow-bench>]
#         -DVERSION=<x.y.z> -DSOURCE_DIR=<repo> -DWORK_DIR=<scratch> -P cli_test.cmake
cmake_minimum_required(VERSION 3.25)

set(failures 0)

# expect(NAME <what> RC <code|nonzero> [MATCH <regex>...] [NOMATCH <regex>...] COMMAND <cmd>...)
# Runs the command (30 s at most) and checks its exit code and its stdout + stderr.
function(expect)
  cmake_parse_arguments(E "" "NAME;RC" "MATCH;NOMATCH;COMMAND" ${ARGN})
  execute_process(COMMAND ${E_COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out TIMEOUT 30)
  set(bad "")
  if(E_RC STREQUAL "nonzero")
    if(rc STREQUAL "0" OR NOT rc MATCHES "^[0-9]+$")
      set(bad "exit code ${rc}, expected non-zero")
    endif()
  elseif(NOT rc STREQUAL E_RC)
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

# Fails when the command's output holds a control byte other than tab and newline (read as hex:
# a CMake string ends at NUL).
function(expect_printable name)
  execute_process(COMMAND ${ARGN} OUTPUT_FILE ${WORK_DIR}/out.bin ERROR_FILE ${WORK_DIR}/err.bin
                  RESULT_VARIABLE rc TIMEOUT 30)
  file(READ ${WORK_DIR}/out.bin out_hex HEX)
  file(READ ${WORK_DIR}/err.bin err_hex HEX)
  string(REGEX MATCHALL ".." bytes "${out_hex}${err_hex}")
  set(bad "")
  foreach(b IN ITEMS 00 01 02 03 04 05 06 07 08 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 18 19 1a
                     1b 1c 1d 1e 1f 7f)
    list(FIND bytes ${b} at)
    if(at GREATER_EQUAL 0)
      string(APPEND bad " 0x${b}")
    endif()
  endforeach()
  if(bad STREQUAL "")
    message(STATUS "ok: ${name}")
  else()
    math(EXPR n "${failures} + 1")
    set(failures ${n} PARENT_SCOPE)
    message(SEND_ERROR "FAILED: ${name}: control bytes in the output:${bad} (exit ${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR}/a_directory)
set(fifo ${WORK_DIR}/a_fifo.toml)
execute_process(COMMAND mkfifo ${fifo} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "mkfifo ${fifo} failed: ${rc}")
endif()
file(WRITE ${WORK_DIR}/overflow.toml "[engine]\npartitions = 99999999999999999999\n")
file(WRITE ${WORK_DIR}/bad.toml "[rings]\ncapacity = 1000\n")
file(WRITE ${WORK_DIR}/unreadable.toml "[engine]\npartitions = 2\n")
file(CHMOD ${WORK_DIR}/unreadable.toml PERMISSIONS OWNER_WRITE)
execute_process(COMMAND id -u OUTPUT_VARIABLE uid OUTPUT_STRIP_TRAILING_WHITESPACE)
set(default_toml ${SOURCE_DIR}/configs/default.toml)
string(REPEAT "[0-9]" 30 thirty_digits)
string(REPLACE "." "\\." version_re "${VERSION}")

# ---- ringflow-config
expect(NAME "ringflow-config --version" RC 0 MATCH "^ringflow-config ${version_re}\n"
       COMMAND ${CONFIG} --version)
expect(NAME "ringflow-config frobnicate names the unknown subcommand" RC 2
       MATCH "unknown subcommand 'frobnicate'" "valid: check"
       NOMATCH "A subcommand is required"
       COMMAND ${CONFIG} frobnicate)
expect(NAME "ringflow-config without a subcommand" RC 2 MATCH "a subcommand is required"
       COMMAND ${CONFIG})
expect(NAME "ringflow-config check on a directory is not valid" RC 1
       MATCH "is a directory, not a regular file" NOMATCH "ok:"
       COMMAND ${CONFIG} check ${WORK_DIR}/a_directory)
expect(NAME "ringflow-config check on a FIFO does not block" RC 1
       MATCH "is a FIFO, not a regular file"
       COMMAND ${CONFIG} check ${fifo})
expect(NAME "ringflow-config check on /dev/zero" RC 1
       MATCH "is a character device, not a regular file"
       COMMAND ${CONFIG} check /dev/zero)
expect(NAME "ringflow-config check names the key of an integer TOML cannot hold" RC 1
       MATCH "overflow.toml:2: engine.partitions: "
       COMMAND ${CONFIG} check ${WORK_DIR}/overflow.toml)
# Bad arguments (README "Bad input catalogue"): each is named, the exit code is non-zero.
expect(NAME "ringflow-config with an unknown flag names it" RC 2
       MATCH "unexpected argument '--frobnicate'" COMMAND ${CONFIG} --frobnicate)
expect(NAME "ringflow-config check without a file says it is required" RC nonzero
       MATCH "file is required" NOMATCH "ok:" COMMAND ${CONFIG} check)
expect(NAME "ringflow-config check --synthetic without a value" RC nonzero
       MATCH "--synthetic: 1 required TEXT missing" NOMATCH "ok:"
       COMMAND ${CONFIG} check ${default_toml} --synthetic)
expect(NAME "ringflow-config check --synthetic with a bad description" RC 2
       MATCH "invalid hwloc synthetic topology 'bogus'" NOMATCH "ok:"
       COMMAND ${CONFIG} check ${default_toml} --synthetic bogus)
expect(NAME "ringflow-config check --xml on a missing file" RC nonzero
       MATCH "--xml: File does not exist" NOMATCH "ok:"
       COMMAND ${CONFIG} check ${default_toml} --xml ${WORK_DIR}/no-such.xml)
expect(NAME "ringflow-config check --xml on a directory" RC nonzero
       MATCH "--xml: File is actually a directory" NOMATCH "ok:"
       COMMAND ${CONFIG} check ${default_toml} --xml ${WORK_DIR}/a_directory)
expect(NAME "ringflow-config check with a second file names the extra argument" RC nonzero
       MATCH "not expected: extra" NOMATCH "ok:"
       COMMAND ${CONFIG} check ${default_toml} extra)
expect(NAME "ringflow-config check on a missing file" RC 1 MATCH "no-such.toml: no such file"
       COMMAND ${CONFIG} check ${WORK_DIR}/no-such.toml)
if(uid STREQUAL "0")
  message(STATUS "skipped: unreadable config files (running as root, which reads any file)")
else()
  expect(NAME "ringflow-config check on an unreadable file" RC 1
         MATCH "cannot read the file [(]check its permissions[)]"
         COMMAND ${CONFIG} check ${WORK_DIR}/unreadable.toml)
  expect(NAME "ringflow-topo --config on an unreadable file" RC 1
         MATCH "cannot read the file [(]check its permissions[)]"
         COMMAND ${TOPO} --config ${WORK_DIR}/unreadable.toml)
endif()

# ---- ringflow-topo
expect(NAME "ringflow-topo --version" RC 0 MATCH "^ringflow-topo ${version_re}\n"
       COMMAND ${TOPO} --version)
expect(NAME "ringflow-topo --config on a directory" RC 1
       MATCH "is a directory, not a regular file"
       COMMAND ${TOPO} --config ${WORK_DIR}/a_directory)
expect(NAME "ringflow-topo with an unknown flag names it" RC nonzero
       MATCH "not expected: --frobnicate" COMMAND ${TOPO} --frobnicate)
expect(NAME "ringflow-topo --config without a value" RC nonzero
       MATCH "--config: 1 required TEXT missing" COMMAND ${TOPO} --config)
expect(NAME "ringflow-topo --config on a missing file" RC 1
       MATCH "invalid config: .*no-such.toml: no such file"
       COMMAND ${TOPO} --config ${WORK_DIR}/no-such.toml)
expect(NAME "ringflow-topo --config on a FIFO does not block" RC 1
       MATCH "is a FIFO, not a regular file" COMMAND ${TOPO} --config ${fifo})
expect(NAME "ringflow-topo --config on /dev/zero" RC 1
       MATCH "is a character device, not a regular file" COMMAND ${TOPO} --config /dev/zero)
expect(NAME "ringflow-topo --config with a config that cannot run" RC 1
       MATCH "rings.capacity" COMMAND ${TOPO} --config ${WORK_DIR}/bad.toml)
expect(NAME "ringflow-topo --synthetic with a bad description" RC 2
       MATCH "invalid hwloc synthetic topology 'bogus'" COMMAND ${TOPO} --synthetic bogus)
expect(NAME "ringflow-topo --xml on a missing file" RC nonzero
       MATCH "--xml: File does not exist" COMMAND ${TOPO} --xml ${WORK_DIR}/no-such.xml)

# ---- ringflow-bench (built with the harness only)
if(BENCH)
  expect(NAME "ringflow-bench --version" RC 0 MATCH "^ringflow-bench ${version_re}\n"
         COMMAND ${BENCH} --version)
  expect_printable("ringflow-bench --help prints text only" ${BENCH} --help)
  expect(NAME "ringflow-bench --help names the choices" RC 0
         MATCH "latency" "throughput" "staged" "full"
         COMMAND ${BENCH} --help)
  # --tune without --out must not overwrite the committed results/tune-latency.
  expect(NAME "ringflow-bench --tune writes under the ignored results/local by default" RC 0
         MATCH "default results/local/tune-<objective>"
         COMMAND ${BENCH} --help)
  expect_printable("ringflow-bench --objective bogus: a whole message"
                   ${BENCH} --tune ${SOURCE_DIR}/configs/default.toml --objective bogus)
  expect(NAME "ringflow-bench --objective bogus names the choices" RC nonzero
         MATCH "bogus not in [{]latency,throughput[}]"
         COMMAND ${BENCH} --tune ${SOURCE_DIR}/configs/default.toml --objective bogus)
  expect(NAME "ringflow-bench --tune-grid bogus names the choices" RC nonzero
         MATCH "bogus not in [{]staged,full[}]"
         COMMAND ${BENCH} --tune ${SOURCE_DIR}/configs/default.toml --tune-grid bogus)
  expect(NAME "ringflow-bench --tune-rate -5 in plain words" RC nonzero
         MATCH "must be a number > 0, got -5" NOMATCH "${thirty_digits}"
         COMMAND ${BENCH} --tune ${SOURCE_DIR}/configs/default.toml --tune-rate -5)
  expect(NAME "ringflow-bench --config BAD fails before running anything" RC 2
         MATCH "bad engine config, nothing was run" "rings.capacity"
         COMMAND ${BENCH} --scenarios ${SOURCE_DIR}/bench/scenarios/smoke.toml
                 --config ${WORK_DIR}/bad.toml --out ${WORK_DIR}/bench_out --no-progress)
  if(EXISTS ${WORK_DIR}/bench_out/summary.json)
    math(EXPR failures "${failures} + 1")
    message(SEND_ERROR "FAILED: ringflow-bench --config BAD still wrote results")
  endif()
  expect(NAME "ringflow-bench --scenarios on a FIFO does not block" RC 2
         MATCH "not a regular file"
         COMMAND ${BENCH} --scenarios ${fifo} --out ${WORK_DIR}/bench_out --no-progress)
  expect(NAME "ringflow-bench with an unknown flag names it" RC nonzero
         MATCH "not expected: --frobnicate" COMMAND ${BENCH} --frobnicate)
  expect(NAME "ringflow-bench --scenarios without a value" RC nonzero
         MATCH "--scenarios: 1 required" COMMAND ${BENCH} --scenarios)
  expect(NAME "ringflow-bench --tune-rate that is not a number" RC nonzero
         MATCH "--tune-rate: must be a number > 0, got abc"
         COMMAND ${BENCH} --tune ${default_toml} --tune-rate abc)
  expect(NAME "ringflow-bench --tune-window 0" RC nonzero
         MATCH "--tune-window: must be a number > 0, got 0"
         COMMAND ${BENCH} --tune ${default_toml} --tune-window 0)
  expect(NAME "ringflow-bench --objective without --tune" RC nonzero
         MATCH "--objective requires --tune" COMMAND ${BENCH} --objective latency)
  expect(NAME "ringflow-bench --scenarios on a missing file" RC nonzero
         MATCH "--scenarios: File does not exist"
         COMMAND ${BENCH} --scenarios ${WORK_DIR}/no-such.toml --no-progress)
  expect(NAME "ringflow-bench --scenarios on a directory" RC nonzero
         MATCH "--scenarios: File is actually a directory"
         COMMAND ${BENCH} --scenarios ${WORK_DIR}/a_directory --no-progress)
  expect(NAME "ringflow-bench --config on /dev/zero runs nothing" RC 2
         MATCH "bad engine config, nothing was run" "is a character device"
         COMMAND ${BENCH} --scenarios ${SOURCE_DIR}/bench/scenarios/smoke.toml
                 --config /dev/zero --out ${WORK_DIR}/bench_out2 --no-progress)
  if(EXISTS ${WORK_DIR}/bench_out2/summary.json)
    math(EXPR failures "${failures} + 1")
    message(SEND_ERROR "FAILED: ringflow-bench --config /dev/zero still wrote results")
  endif()
endif()

file(REMOVE ${fifo})
if(failures GREATER 0)
  message(FATAL_ERROR "${failures} tool check(s) failed")
endif()
