#include "src/server/http_connections.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace perseus::server {
namespace {

using Clock = std::chrono::steady_clock;

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

void PeerOrLocal(int sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? getpeername(sock, sa, &len) : getsockname(sock, sa, &len)) != 0) return;
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in->sin6_addr, text, sizeof text);
    port = ntohs(in->sin6_port);
  }
  ip = text;
}

// Writes all of `data` to the non-blocking socket within `timeout`.
bool WriteAll(int sock, const char* data, size_t size, Clock::time_point deadline) {
  while (size > 0) {
    const ssize_t n = ::send(sock, data, size, MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{sock, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) return false;
      continue;
    }
    return false;
  }
  return true;
}

// One buffered request for cpp-httplib: reads come from the buffer (then end
// of stream), writes go to the socket.
class BufferedStream : public httplib::Stream {
 public:
  BufferedStream(int sock, const std::string& buffer, size_t end, double write_timeout_s)
      : sock_(sock), buffer_(buffer), end_(end), write_timeout_(Seconds(write_timeout_s)) {}

  bool is_readable() const override { return pos_ < end_; }
  bool is_writable() const override { return !failed_; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, end_ - pos_);
    std::memcpy(ptr, buffer_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (failed_ || !WriteAll(sock_, ptr, size, Clock::now() + write_timeout_)) {
      failed_ = true;
      return -1;
    }
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    PeerOrLocal(sock_, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    PeerOrLocal(sock_, false, ip, port);
  }
  ::socket_t socket() const override { return sock_; }
  bool failed() const { return failed_; }

 private:
  int sock_;
  const std::string& buffer_;
  size_t end_;
  size_t pos_ = 0;
  Clock::duration write_timeout_;
  bool failed_ = false;
};

struct Conn {
  int fd = -1;
  uint32_t generation = 0;
  std::string buffer;
  Clock::time_point started;  // the current request's first byte (when buffer is not empty)
  Clock::time_point last;     // the last request's end (idle since)
  size_t need = 0;            // the framed request's size once its head is parsed; 0 before
  size_t requests = 0;
  bool busy = false;               // a worker owns it
  bool lingering = false;          // rejected: discarding input until the peer closes
  Clock::time_point linger_until;  // when lingering, close then at the latest
  size_t discarded = 0;
  size_t reserved = 0;  // of Impl::reserved: the body being buffered
};

struct Rejection {
  Rejection(int s, const char* r, std::string m, std::string a = "")
      : status(s), reason(r), message(std::move(m)), allow(std::move(a)) {}
  int status;
  const char* reason;
  std::string message;
  std::string allow;  // 405: the Allow header
};

}  // namespace

struct Connections::Impl {
  ConnectionOptions options;
  ProcessRequest process;
  std::atomic<size_t> reserved{0};  // bytes of the bodies being buffered, all connections
  int epoll_fd = -1;
  int wake_fd = -1;

  mutable std::mutex mu;
  std::unordered_map<int, std::shared_ptr<Conn>> conns;
  uint32_t generation = 0;
  bool stopped = false;

  std::mutex queue_mu;
  std::condition_variable queue_cv;
  std::deque<std::shared_ptr<Conn>> queue;

  std::thread loop;
  std::vector<std::thread> workers;

  static uint64_t Key(const Conn& c) {
    return (static_cast<uint64_t>(c.generation) << 32) | static_cast<uint32_t>(c.fd);
  }

  void Arm(Conn& c, bool add) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.u64 = Key(c);
    epoll_ctl(epoll_fd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev);
  }

  void Release(Conn& c) {
    reserved -= c.reserved;
    c.reserved = 0;
  }

  void Close(const std::shared_ptr<Conn>& c) {
    Release(*c);
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = conns.find(c->fd);
      if (it != conns.end() && it->second == c) conns.erase(it);
    }
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, nullptr);
    ::close(c->fd);
  }

  static std::string ReplyText(int status, const std::string& message,
                               const std::string& allow = "") {
    const char* text = status == 400   ? "Bad Request"
                       : status == 405 ? "Method Not Allowed"
                       : status == 408 ? "Request Timeout"
                       : status == 411 ? "Length Required"
                       : status == 413 ? "Payload Too Large"
                       : status == 431 ? "Request Header Fields Too Large"
                       : status == 503 ? "Service Unavailable"
                                       : "Error";
    const std::string body = nlohmann::json{{"error", message}}.dump(
                                 -1, ' ', false, nlohmann::json::error_handler_t::replace) +
                             "\n";
    return "HTTP/1.1 " + std::to_string(status) + " " + text +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           (allow.empty() ? "" : "\r\nAllow: " + allow) + "\r\nConnection: close\r\n\r\n" + body;
  }

  // Sends the rejection, then discards what the client still sends for a
  // moment (closing with unread input would reset the connection, and the
  // client could lose the reply).
  void Reject(const std::shared_ptr<Conn>& c, const Rejection& r) {
    Release(*c);
    if (options.rejected) options.rejected(r.reason);
    const std::string text = ReplyText(r.status, r.message, r.allow);
    WriteAll(c->fd, text.data(), text.size(), Clock::now() + std::chrono::seconds(1));
    ::shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    c->linger_until = Clock::now() + std::chrono::seconds(2);
    c->buffer.clear();
    c->buffer.shrink_to_fit();
    std::lock_guard<std::mutex> lock(mu);
    c->busy = false;
    Arm(*c, false);
  }

  // What the buffered bytes allow: a rejection, or (need set and buffer full
  // enough) a request ready to run. Parses the head once it is in.
  std::optional<Rejection> Examine(Conn& c) {
    if (c.need > 0) return std::nullopt;
    // Blank lines between requests (RFC 9112 2.2: ignore them).
    size_t skip = 0;
    while (skip < c.buffer.size() && (c.buffer[skip] == '\r' || c.buffer[skip] == '\n')) ++skip;
    if (skip > 0) c.buffer.erase(0, skip);
    if (c.buffer.empty()) return std::nullopt;
    const size_t end = c.buffer.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (c.buffer.size() > options.max_header_bytes) {
        return Rejection{431, "header_too_large",
                         "request line and headers larger than " +
                             std::to_string(options.max_header_bytes) + " bytes"};
      }
      return std::nullopt;
    }
    const size_t head = end + 4;
    if (head > options.max_header_bytes + 4) {
      return Rejection{431, "header_too_large",
                       "request line and headers larger than " +
                           std::to_string(options.max_header_bytes) + " bytes"};
    }
    const std::string_view text(c.buffer.data(), head);
    size_t line_end = text.find("\r\n");
    const std::string_view request_line = text.substr(0, line_end);
    const size_t sp1 = request_line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
      return Rejection{400, "bad_request", "malformed request line"};
    }
    const std::string_view method = request_line.substr(0, sp1);
    std::string_view path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    bool has_length = false;
    size_t length = 0;
    bool expect_continue = false;
    size_t expect_begin = 0, expect_end = 0;
    for (size_t pos = line_end + 2; pos < end;) {
      const size_t next = text.find("\r\n", pos);
      const std::string_view line = text.substr(pos, next - pos);
      const size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        const std::string_view name = Trim(line.substr(0, colon));
        const std::string_view value = Trim(line.substr(colon + 1));
        if (EqualsIgnoreCase(name, "Content-Length")) {
          size_t v = 0;
          bool valid = !value.empty() && value.size() <= 18;
          for (char ch : value) {
            if (ch < '0' || ch > '9') valid = false;
            v = v * 10 + static_cast<size_t>(ch - '0');
          }
          if (!valid || (has_length && v != length)) {
            return Rejection{400, "bad_request", "invalid Content-Length"};
          }
          has_length = true;
          length = v;
        } else if (EqualsIgnoreCase(name, "Transfer-Encoding") &&
                   !EqualsIgnoreCase(value, "identity")) {
          return Rejection{411, "length_required",
                           "request bodies need Content-Length (Transfer-Encoding is not "
                           "accepted)"};
        } else if (EqualsIgnoreCase(name, "Expect") && EqualsIgnoreCase(value, "100-continue")) {
          expect_continue = true;
          expect_begin = pos;
          expect_end = next + 2;
        }
      }
      pos = next + 2;
    }
    if (options.allowed_methods) {
      if (std::string allow = options.allowed_methods(method, path); !allow.empty()) {
        return Rejection{405, "method_not_allowed",
                         std::string(method) + " is not allowed on " + std::string(path) +
                             " (allowed: " + allow + ")",
                         allow};
      }
    }
    const size_t limit = options.body_limit ? options.body_limit(method, path) : SIZE_MAX;
    if (length > limit) {
      return Rejection{413, "body_too_large",
                       "request body of " + std::to_string(length) +
                           " bytes is larger than the limit of " + std::to_string(limit) +
                           " bytes for " + std::string(method) + " " + std::string(path)};
    }
    // The bodies being buffered share one budget: beyond it a request waits
    // for none of it and is told to come back (503).
    if (length > 0) {
      if (reserved.fetch_add(length) + length > options.max_buffered_bytes) {
        reserved -= length;
        return Rejection{503, "server_busy",
                         "the server is buffering " + std::to_string(options.max_buffered_bytes) +
                             " bytes of request bodies already: retry later"};
      }
      c.reserved = length;
    }
    size_t head_size = head;
    if (expect_continue) {
      // Answered here; cpp-httplib must not answer it again.
      c.buffer.erase(expect_begin, expect_end - expect_begin);
      head_size -= expect_end - expect_begin;
      if (c.buffer.size() < head_size + length) {
        static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        WriteAll(c.fd, kContinue, sizeof kContinue - 1, Clock::now() + std::chrono::seconds(1));
      }
    }
    c.need = head_size + length;
    return std::nullopt;
  }

  void Dispatch(const std::shared_ptr<Conn>& c) {
    {
      std::lock_guard<std::mutex> lock(queue_mu);
      queue.push_back(c);
    }
    queue_cv.notify_one();
  }

  // After reading (loop) or a request (worker, which owns `c`): dispatch,
  // reject, or wait for more input.
  void Next(const std::shared_ptr<Conn>& c) {
    if (auto r = Examine(*c)) return Reject(c, *r);
    if (c->need > 0 && c->buffer.size() >= c->need) {
      {
        std::lock_guard<std::mutex> lock(mu);
        c->busy = true;
      }
      return Dispatch(c);
    }
    std::lock_guard<std::mutex> lock(mu);
    c->busy = false;
    Arm(*c, false);
  }

  void OnReadable(const std::shared_ptr<Conn>& c) {
    char chunk[65536];
    for (;;) {
      // Read no more than the framed request (the rest waits in the kernel).
      size_t want = sizeof chunk;
      if (!c->lingering && c->need > 0) {
        if (c->buffer.size() >= c->need) break;
        want = std::min(want, c->need - c->buffer.size());
      }
      const ssize_t n = ::recv(c->fd, chunk, want, 0);
      if (n > 0) {
        if (c->lingering) {
          c->discarded += static_cast<size_t>(n);
          if (c->discarded > (64u << 20)) return Close(c);
          continue;
        }
        if (c->buffer.empty()) c->started = Clock::now();
        c->buffer.append(chunk, static_cast<size_t>(n));
        if (c->need == 0) {
          if (auto r = Examine(*c)) return Reject(c, *r);
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return Close(c);  // closed by the peer, or an error
    }
    if (c->lingering) {
      std::lock_guard<std::mutex> lock(mu);
      Arm(*c, false);
      return;
    }
    Next(c);
  }

  // Times out requests that have not arrived in full, idle connections and
  // lingering ones.
  void Sweep() {
    const auto now = Clock::now();
    std::vector<std::shared_ptr<Conn>> late, idle;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& [fd, c] : conns) {
        if (c->busy) continue;
        if (c->lingering) {
          if (now >= c->linger_until) idle.push_back(c);
        } else if (!c->buffer.empty()) {
          if (now - c->started >= Seconds(options.request_timeout_s)) late.push_back(c);
        } else if (now - c->last >= Seconds(options.idle_timeout_s)) {
          idle.push_back(c);
        }
      }
    }
    for (const auto& c : late) {
      Reject(c, Rejection{408, "request_timeout",
                          "the request did not arrive in full within " +
                              std::to_string(static_cast<int>(options.request_timeout_s)) + " s"});
    }
    for (const auto& c : idle) Close(c);
  }

  void Loop() {
    epoll_event events[256];
    auto next_sweep = Clock::now();
    for (;;) {
      const int n = epoll_wait(epoll_fd, events, 256, 100);
      if (n < 0 && errno != EINTR) break;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stopped) break;
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == UINT64_MAX) continue;  // the wake-up
        const int fd = static_cast<int>(events[i].data.u64 & 0xffffffffu);
        const auto gen = static_cast<uint32_t>(events[i].data.u64 >> 32);
        std::shared_ptr<Conn> c;
        {
          std::lock_guard<std::mutex> lock(mu);
          auto it = conns.find(fd);
          if (it == conns.end() || it->second->generation != gen || it->second->busy) {
            continue;
          }
          c = it->second;
        }
        OnReadable(c);
      }
      if (Clock::now() >= next_sweep) {
        Sweep();
        next_sweep = Clock::now() + std::chrono::milliseconds(200);
      }
    }
  }

  void Work() {
    for (;;) {
      std::shared_ptr<Conn> c;
      {
        std::unique_lock<std::mutex> lock(queue_mu);
        queue_cv.wait(lock, [this] {
          std::lock_guard<std::mutex> l(mu);
          return stopped || !queue.empty();
        });
        if (queue.empty()) return;  // stopped
        c = std::move(queue.front());
        queue.pop_front();
      }
      BufferedStream stream(c->fd, c->buffer, c->need, options.write_timeout_s);
      const bool last = ++c->requests >= options.max_requests_per_connection;
      bool closed = false;
      bool ok = false;
      try {
        ok = process(stream, last, closed);
      } catch (...) {
        ok = false;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stopped) ok = false;
      }
      if (!ok || closed || last || stream.failed()) {
        Close(c);
        continue;
      }
      Release(*c);
      c->buffer.erase(0, c->need);
      c->need = 0;
      c->last = Clock::now();
      c->started = c->last;  // a pipelined request's bytes are already here
      Next(c);
    }
  }
};

Connections::Connections(const ConnectionOptions& options, ProcessRequest process)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->process = std::move(process);
  impl_->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  impl_->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = UINT64_MAX;
  epoll_ctl(impl_->epoll_fd, EPOLL_CTL_ADD, impl_->wake_fd, &ev);
  impl_->loop = std::thread([this] { impl_->Loop(); });
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    impl_->workers.emplace_back([this] { impl_->Work(); });
  }
}

Connections::~Connections() { Stop(); }

void Connections::Adopt(int sock) {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mu);
  if (m.stopped || static_cast<int>(m.conns.size()) >= m.options.max_connections) {
    const bool stopping = m.stopped;
    lock.unlock();
    if (!stopping && m.options.rejected) m.options.rejected("connection_limit");
    const std::string text = Impl::ReplyText(
        503, "too many open connections (limit " + std::to_string(m.options.max_connections) + ")");
    const int flags = fcntl(sock, F_GETFL, 0);
    fcntl(sock, F_SETFL, flags | O_NONBLOCK);
    WriteAll(sock, text.data(), text.size(), Clock::now() + std::chrono::milliseconds(100));
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return;
  }
  const int flags = fcntl(sock, F_GETFL, 0);
  fcntl(sock, F_SETFL, flags | O_NONBLOCK);
  auto c = std::make_shared<Conn>();
  c->fd = sock;
  c->generation = ++m.generation;
  c->last = Clock::now();
  m.conns[sock] = c;
  m.Arm(*c, true);
}

void Connections::Stop() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.stopped) return;
    m.stopped = true;
  }
  const uint64_t one = 1;
  (void)!::write(m.wake_fd, &one, sizeof one);
  { std::lock_guard<std::mutex> lock(m.queue_mu); }
  m.queue_cv.notify_all();
  if (m.loop.joinable()) m.loop.join();
  for (auto& t : m.workers) t.join();
  m.workers.clear();
  std::unordered_map<int, std::shared_ptr<Conn>> left;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    left.swap(m.conns);
  }
  for (const auto& [fd, c] : left) ::close(fd);
  m.queue.clear();  // every queued one was in conns: closed above
  ::close(m.wake_fd);
  ::close(m.epoll_fd);
}

size_t Connections::buffered() const { return impl_->reserved.load(); }

int Connections::open() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return static_cast<int>(impl_->conns.size());
}

}  // namespace perseus::server
