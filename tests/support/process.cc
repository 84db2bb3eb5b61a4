#include "tests/support/process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace perseus::testing {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  std::string base = dir != nullptr && *dir != '\0' ? dir : "/tmp";
  static int counter = 0;
  std::string path = base + "/perseus-gpu-test-" + std::to_string(getpid()) + "-" +
                     std::to_string(counter++) + "-" + name;
  unlink(path.c_str());
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

CommandOutput RunCaptured(const std::string& command) {
  const std::string out = TempPath("stdout"), err = TempPath("stderr");
  const int status = std::system((command + " >" + out + " 2>" + err + " </dev/null").c_str());
  CommandOutput o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out = ReadFile(out);
  o.err = ReadFile(err);
  unlink(out.c_str());
  unlink(err.c_str());
  return o;
}

Child::Child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int fds[2];
  if (pipe(fds) != 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<std::string> environment(env);
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const std::string& extra : env) overridden |= extra.rfind(name + "=", 0) == 0;
    if (!overridden) environment.push_back(entry);
  }
  std::vector<char*> args, envp;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& e : environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data()) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  out_fd_ = fds[0];
}

Child::~Child() {
  if (pid_ > 0 && !waited_) {
    kill(pid_, SIGKILL);
    Wait();
  }
  if (out_fd_ >= 0) close(out_fd_);
}

std::string Child::ReadLine() {
  for (;;) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    char chunk[512];
    const ssize_t n = read(out_fd_, chunk, sizeof chunk);
    if (n <= 0) {
      std::string rest = std::move(buffer_);
      buffer_.clear();
      return rest;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

std::string Child::ReadAll() {
  char chunk[4096];
  ssize_t n;
  while ((n = read(out_fd_, chunk, sizeof chunk)) > 0)
    buffer_.append(chunk, static_cast<size_t>(n));
  std::string all = std::move(buffer_);
  buffer_.clear();
  return all;
}

void Child::Kill(int sig) {
  if (pid_ > 0 && !waited_) kill(pid_, sig);
}

int Child::Wait() {
  if (pid_ <= 0) return -1;
  if (!waited_) {
    while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    waited_ = true;
  }
  return status_;
}

}  // namespace perseus::testing
