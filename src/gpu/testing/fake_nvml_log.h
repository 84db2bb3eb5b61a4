// Test helpers: reading the stand-in NVML library's call log, and running a
// child process with extra environment variables.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace perseus::gpu::testing {

// The log's lines with the pid removed: "<function> <arguments> -> <rc>".
std::vector<std::string> FakeNvmlCalls(const std::string& log_path);
// Lines starting with `function`.
std::vector<std::string> FakeNvmlCalls(const std::string& log_path, const std::string& function);
// The SM clock of `gpu` after the last successful lock or reset in the log:
// the locked MHz, 0 after a reset, -1 if neither happened.
int FakeNvmlSmState(const std::string& log_path, int gpu);

// A fresh empty file path in the test's temporary directory.
std::string TempPath(const std::string& name);

// A child process: argv[0] is the program's path; `env` entries (NAME=value)
// are added to this process's environment. Its stdout is readable line by line.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::vector<std::string>& env);
  ~Child();
  // Next line of stdout without the newline; empty at end of output.
  std::string ReadLine();
  // Everything the child wrote to stdout (until it closes it).
  std::string ReadAll();
  void Kill(int sig);
  // Waits; returns the wait status.
  int Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool waited_ = false;
  int status_ = 0;
  std::string buffer_;
};

}  // namespace perseus::gpu::testing
