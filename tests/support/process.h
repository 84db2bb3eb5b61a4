// Test helpers: temporary paths and child processes with extra environment.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace perseus::testing {

// A fresh empty file path in the test's temporary directory.
std::string TempPath(const std::string& name);

// A file's whole text ("" when it cannot be read).
std::string ReadFile(const std::string& path);

struct CommandOutput {
  int exit_code = -1;  // -1: killed by a signal
  std::string out, err;
};
// Runs `command` (a shell command line) with stdin from /dev/null; returns its
// exit code and what it wrote to stdout and stderr.
CommandOutput RunCaptured(const std::string& command);

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

}  // namespace perseus::testing
