#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "store/wal/wal.hpp"

namespace ringflow::wal {

namespace {

class PosixFileOps final : public FileOps {
 public:
  int open(const std::filesystem::path& path, int flags, int mode) override {
    for (;;) {
      const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
      if (fd >= 0) return fd;
      if (errno != EINTR) return -errno;
    }
  }

  long pwrite(int fd, const void* data, std::size_t n, std::uint64_t at) override {
    const auto* p = static_cast<const char*>(data);
    std::size_t done = 0;
    while (done < n) {
      const ssize_t w = ::pwrite(fd, p + done, n - done, static_cast<off_t>(at + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      if (w == 0) return -EIO;
      done += static_cast<std::size_t>(w);
    }
    return static_cast<long>(done);
  }

  long pread(int fd, void* data, std::size_t n, std::uint64_t at) override {
    auto* p = static_cast<char*>(data);
    std::size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(at + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      if (r == 0) break;  // end of file
      done += static_cast<std::size_t>(r);
    }
    return static_cast<long>(done);
  }

  int fdatasync(int fd) override {
    for (;;) {
      if (::fdatasync(fd) == 0) return 0;
      if (errno != EINTR) return -errno;
    }
  }

  int fallocate(int fd, std::uint64_t bytes) override {
    for (;;) {
      if (::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) == 0) return 0;
      if (errno == EINTR) continue;
      if (errno == EOPNOTSUPP || errno == ENOSYS) return ftruncate(fd, bytes);  // a sparse file
      return -errno;
    }
  }

  int ftruncate(int fd, std::uint64_t bytes) override {
    for (;;) {
      if (::ftruncate(fd, static_cast<off_t>(bytes)) == 0) return 0;
      if (errno != EINTR) return -errno;
    }
  }

  int close(int fd) override { return ::close(fd) == 0 ? 0 : -errno; }

  int start_writeback(int fd, std::uint64_t at, std::uint64_t n) override {
    for (;;) {
      if (::sync_file_range(fd, static_cast<off_t>(at), static_cast<off_t>(n),
                            SYNC_FILE_RANGE_WRITE) == 0) {
        return 0;
      }
      if (errno != EINTR) return -errno;
    }
  }

  int unlink(const std::filesystem::path& path) override {
    return ::unlink(path.c_str()) == 0 ? 0 : -errno;
  }

  int fsync_dir(const std::filesystem::path& dir) override {
    const int fd = open(dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) return fd;
    int rc = 0;
    for (;;) {
      if (::fsync(fd) == 0) break;
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    ::close(fd);
    return rc;
  }
};

}  // namespace

FileOps& posix_file_ops() {
  static PosixFileOps ops;
  return ops;
}

}  // namespace ringflow::wal
