// Files a user hands over or gets back: written so that a killed run never
// leaves a torn one, read with the checks a careful tool makes (a regular
// file, a bounded size), and echoed in messages in bounded pieces.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "perseus/common/status.h"

namespace perseus {

// A field read from a file, as messages echo it: at most `max_chars` bytes
// (cut at a UTF-8 character boundary) followed by "..." when longer, so a
// megabyte-long field never becomes a megabyte-long message.
inline std::string FieldText(std::string_view field, size_t max_chars = 60) {
  if (field.size() <= max_chars) return std::string(field);
  size_t cut = max_chars;
  while (cut > 0 && (static_cast<unsigned char>(field[cut]) & 0xC0) == 0x80) --cut;
  return std::string(field.substr(0, cut)) + "...";
}

// A number as a data file may write it: decimal, [+-]digits[.digits][e[+-]digits]
// (or .digits). Not hex (0x10, 0x1p3), inf, nan, nor surrounding spaces:
// strtod takes them all, and a profile's "0x10" is a typo, not 16.
inline bool IsDecimalNumberText(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exponent = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++exponent;
    if (exponent == 0) return false;
  }
  return i == s.size();
}

// "1.5 MiB", "64 MiB", "900 bytes": a size bound in messages.
inline std::string ByteSizeText(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0) {
    return std::to_string(bytes >> 20) + " MiB";
  }
  return std::to_string(bytes) + " bytes";
}

// The whole of a regular file of at most `max_bytes` bytes. `what` names the
// file's role in messages ("profile", "schedule file"). Refuses, with
// kInvalidInput "PATH: ...", a FIFO, device, socket or directory (opened
// without blocking, never read) and a file larger than max_bytes (also one
// that grows past it while being read); kNotFound when it does not exist.
inline Result<std::string> ReadRegularFile(const std::string& path, uint64_t max_bytes,
                                           const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(path + ": cannot open " + what + ": no such file");
    return Status::InvalidInput(path + ": cannot open " + what + ": " + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Status::InvalidInput(path + ": cannot read " + what + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return Status::InvalidInput(path + ": the " + what + " must be a regular file, not " + kind);
  }
  const auto too_large = [&] {
    return Status::InvalidInput(path + ": the " + what + " is larger than " +
                                ByteSizeText(max_bytes) + ", the most perseus reads");
  };
  if (static_cast<uint64_t>(st.st_size) > max_bytes) return too_large();
  // Back to blocking reads for a regular file (O_NONBLOCK has no effect on
  // them on Linux, but keep the semantics plain).
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::string text;
  text.reserve(static_cast<size_t>(st.st_size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::InvalidInput(path + ": cannot read " + what + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > max_bytes) return too_large();
  }
  return text;
}

namespace files_internal {

inline Status WriteAll(int fd, const std::string& text, const std::string& name) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Internal(name + ": write failed: " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace files_internal

// Flushes a directory's entries (renames into it) to disk.
inline Status SyncDirectory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return Status::Internal(dir.string() + ": cannot open directory: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Status::Internal(dir.string() + ": fsync failed: " + std::strerror(err));
  return Status::Ok();
}

// Writes `text` to `tmp` and flushes it to disk (fsync): the first half of
// an atomic replacement, for callers that rename several files themselves.
inline Status WriteDurably(const std::filesystem::path& tmp, const std::string& text) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::InvalidInput(tmp.string() + ": cannot write: " + std::strerror(errno));
  Status s = files_internal::WriteAll(fd, text, tmp.string());
  if (s.ok() && ::fsync(fd) != 0) {
    s = Status::Internal(tmp.string() + ": fsync failed: " + std::strerror(errno));
  }
  if (::close(fd) != 0 && s.ok()) {
    s = Status::Internal(tmp.string() + ": close failed: " + std::strerror(errno));
  }
  if (!s.ok()) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
  }
  return s;
}

// Writes `text` to PATH.tmp.PID, flushes it to disk, then renames it to PATH
// (and flushes the directory): PATH is the old file or the new one, whole.
inline Status WriteFileAtomically(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  if (Status s = WriteDurably(tmp, text); !s.ok()) return s;
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    std::filesystem::remove(tmp, ec);
    return Status::Internal(path.string() + ": " + why);
  }
  return SyncDirectory(path.parent_path());
}

}  // namespace perseus
