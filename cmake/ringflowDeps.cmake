# Every dependency comes from a Debian package. A missing one stops CMake with a message that
# names the package to install (or `make deps`, which installs them all).
function(ringflow_missing what debian_pkg)
  message(FATAL_ERROR
    "ringflow: ${what} was not found.\n"
    "  Install the Debian package:  apt-get install ${debian_pkg}\n"
    "  (or run `make deps`, which installs every package ringflow needs)")
endfunction()

find_package(Threads REQUIRED)

find_package(TBB 2021.5 QUIET CONFIG)
if(NOT TBB_FOUND)
  ringflow_missing("oneTBB (TBB::tbb)" libtbb-dev)
endif()

find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  ringflow_missing("pkg-config" pkg-config)
endif()

if(RINGFLOW_WITH_HWLOC)
  pkg_check_modules(HWLOC QUIET IMPORTED_TARGET GLOBAL hwloc>=2.0)
  if(NOT HWLOC_FOUND)
    ringflow_missing("hwloc >= 2.0" "libhwloc-dev (or configure with -DRINGFLOW_WITH_HWLOC=OFF)")
  endif()
endif()

if(RINGFLOW_WITH_JEMALLOC)
  pkg_check_modules(JEMALLOC QUIET IMPORTED_TARGET GLOBAL jemalloc)
  if(NOT JEMALLOC_FOUND)
    ringflow_missing("jemalloc" "libjemalloc-dev (or configure with -DRINGFLOW_WITH_JEMALLOC=OFF)")
  endif()
endif()

# The write-ahead log: CRC32C from ISA-L, AES-256-GCM and SHA-256 from OpenSSL 3's libcrypto.
pkg_check_modules(ISAL QUIET IMPORTED_TARGET GLOBAL libisal)
if(NOT ISAL_FOUND)
  ringflow_missing("ISA-L (libisal, CRC32C for the write-ahead log)" libisal-dev)
endif()
find_package(OpenSSL 3 QUIET COMPONENTS Crypto)
if(NOT OPENSSL_FOUND)
  ringflow_missing("OpenSSL 3 libcrypto (AES-256-GCM for the write-ahead log)" libssl-dev)
endif()

find_package(tomlplusplus 3 QUIET CONFIG)
if(NOT tomlplusplus_FOUND)
  ringflow_missing("toml++ 3 (tomlplusplus::tomlplusplus)" libtomlplusplus-dev)
endif()

if(RINGFLOW_BUILD_TESTS)
  find_package(GTest QUIET CONFIG)
  if(NOT GTest_FOUND)
    ringflow_missing("GoogleTest" libgtest-dev)
  endif()
endif()

if(RINGFLOW_BUILD_BENCH)
  find_package(benchmark QUIET CONFIG)
  if(NOT benchmark_FOUND)
    ringflow_missing("Google Benchmark" libbenchmark-dev)
  endif()
  find_package(Boost 1.74 QUIET CONFIG)
  if(NOT Boost_FOUND)
    ringflow_missing("Boost headers (boost::lockfree peer)" libboost-dev)
  endif()
  find_path(RINGFLOW_RWQ_INCLUDE readerwriterqueue/readerwriterqueue.h)
  if(NOT RINGFLOW_RWQ_INCLUDE)
    ringflow_missing("moodycamel ReaderWriterQueue" libreaderwriterqueue-dev)
  endif()
endif()

if(RINGFLOW_BUILD_TOOLS OR RINGFLOW_BUILD_BENCH)
  find_package(CLI11 2 QUIET CONFIG)
  if(NOT CLI11_FOUND)
    ringflow_missing("CLI11" libcli11-dev)
  endif()
endif()
