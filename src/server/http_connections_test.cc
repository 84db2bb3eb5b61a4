// Connections against raw sockets: requests run only once buffered in full,
// pipelining and keep-alive, Expect: 100-continue, and every limit (408, 411,
// 413, 431, 503). The request runner is a stand-in for cpp-httplib's
// process_request that echoes what it was given.
#include "src/server/http_connections.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace perseus::server {
namespace {

// A listening socket on loopback whose accepted sockets go to Connections.
class Harness {
 public:
  explicit Harness(ConnectionOptions options) {
    options.rejected = [this](const char* reason) {
      std::lock_guard<std::mutex> lock(mu_);
      ++rejected_[reason];
    };
    connections_ = std::make_unique<Connections>(
        options, [this](httplib::Stream& stream, bool close, bool& closed) {
          return Echo(stream, close, closed);
        });
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_fd_, 128), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_ = std::thread([this] {
      for (;;) {
        const int s = ::accept(listen_fd_, nullptr, nullptr);
        if (s < 0) return;
        connections_->Adopt(s);
      }
    });
  }
  ~Harness() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    accept_.join();
    connections_->Stop();
  }

  int Connect() const {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    EXPECT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return s;
  }
  int rejected(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    return rejected_[reason];
  }
  int requests() const { return requests_; }
  Connections& connections() { return *connections_; }

 private:
  // Reads the whole buffered request and answers "got <bytes>" with its length.
  bool Echo(httplib::Stream& stream, bool close, bool& closed) {
    ++requests_;
    std::string request;
    char buf[4096];
    for (ssize_t n; (n = stream.read(buf, sizeof buf)) > 0;) {
      request.append(buf, static_cast<size_t>(n));
    }
    const std::string body = "got " + std::to_string(request.size());
    closed = request.find("Connection: close") != std::string::npos;
    const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                              (close || closed ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
    return stream.write(reply.data(), reply.size()) == static_cast<ssize_t>(reply.size());
  }

  std::unique_ptr<Connections> connections_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_;
  std::mutex mu_;
  std::map<std::string, int> rejected_;
  std::atomic<int> requests_{0};
};

void Send(int s, const std::string& text) {
  ASSERT_EQ(::send(s, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

// What arrives until `until` is in it, or the peer closes,
// or 30 s pass (a wedged test ends; nothing is timed).
std::string Receive(int s, const std::string& until) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got.find(until) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{s, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(s, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Polls `done` until it holds or 30 s have passed (no sleep that a loaded
// machine outlasts).
template <typename Done>
void WaitUntil(Done&& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

ConnectionOptions Options() {
  ConnectionOptions o;
  o.threads = 2;
  o.body_limit = [](std::string_view method, std::string_view) -> size_t {
    return method == "PUT" ? 100 : 10;
  };
  return o;
}

const char kGet[] = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";  // 28 bytes

TEST(Connections, RunsARequestOnlyOnceItIsBufferedInFull) {
  Harness h(Options());
  const int s = h.Connect();
  Send(s, "PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nab");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(h.requests(), 0);
  Send(s, "cde");
  EXPECT_NE(Receive(s, "got 43").find("got 43"), std::string::npos);
  EXPECT_EQ(h.requests(), 1);
  ::close(s);
}

TEST(Connections, KeepsTheConnectionAliveAndRunsPipelinedRequestsInOrder) {
  Harness h(Options());
  const int s = h.Connect();
  Send(s, std::string(kGet) + "\r\n" + kGet + "PUT /y HTTP/1.1\r\nContent-Length: 1\r\n\r\nz");
  const std::string got = Receive(s, "got 39");
  const size_t first = got.find("got 28");
  const size_t second = got.find("got 28", first + 1);
  ASSERT_NE(second, std::string::npos) << got;
  EXPECT_GT(got.find("got 39"), second) << got;
  EXPECT_EQ(h.requests(), 3);
  ::close(s);
}

TEST(Connections, AnswersExpectContinueAndHidesItFromTheRequest) {
  Harness h(Options());
  const int s = h.Connect();
  Send(s, "PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(Receive(s, "\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  Send(s, "ok");
  // 62 bytes less the 22 of the Expect line.
  EXPECT_NE(Receive(s, "got 40").find("got 40"), std::string::npos);
  ::close(s);
}

TEST(Connections, RefusesABodyOverTheRouteLimitBeforeReadingIt) {
  Harness h(Options());
  const int s = h.Connect();
  Send(s, "POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
  const std::string got = Receive(s, "}\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0), 0u) << got;
  EXPECT_NE(got.find(R"({"error":"request body of 11 bytes is larger than the limit of 10 bytes )"
                     R"(for POST /x"})"),
            std::string::npos)
      << got;
  EXPECT_EQ(h.requests(), 0);
  EXPECT_EQ(h.rejected("body_too_large"), 1);
  ::close(s);
}

TEST(Connections, RefusesChunkedBodiesAndBadContentLength) {
  Harness h(Options());
  int s = h.Connect();
  Send(s, "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(Receive(s, "}\n").rfind("HTTP/1.1 411 ", 0), 0u);
  ::close(s);
  s = h.Connect();
  Send(s, "PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
  EXPECT_EQ(Receive(s, "}\n").rfind("HTTP/1.1 400 ", 0), 0u);
  ::close(s);
  EXPECT_EQ(h.rejected("length_required"), 1);
  EXPECT_EQ(h.rejected("bad_request"), 1);
}

TEST(Connections, AnswersAMethodTheRouteDoesNotHave) {
  ConnectionOptions o = Options();
  o.allowed_methods = [](std::string_view method, std::string_view path) -> std::string {
    return path == "/x" && method != "GET" ? "GET" : "";
  };
  Harness h(o);
  int s = h.Connect();
  Send(s, "TRACE /x HTTP/1.1\r\n\r\n");
  const std::string got = Receive(s, "}\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("\r\nAllow: GET\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find(R"j({"error":"TRACE is not allowed on /x (allowed: GET)"})j"),
            std::string::npos)
      << got;
  ::close(s);
  s = h.Connect();
  Send(s, "TRACE /y HTTP/1.1\r\n\r\n");  // not a route: on to the router
  EXPECT_NE(Receive(s, "got 21").find("got 21"), std::string::npos);
  ::close(s);
  EXPECT_EQ(h.rejected("method_not_allowed"), 1);
}

TEST(Connections, BuffersBodiesWithinOneBudgetForAllConnections) {
  ConnectionOptions o = Options();
  o.max_buffered_bytes = 150;
  Harness h(o);
  const int a = h.Connect(), b = h.Connect();
  Send(a, "PUT /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n");  // 100 of 150 reserved
  // Once a's headers are read.
  WaitUntil([&] { return h.connections().buffered() >= 100; });
  ASSERT_EQ(h.connections().buffered(), 100u);
  Send(b, "PUT /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n");
  const std::string got = Receive(b, "}\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << got;
  EXPECT_EQ(h.rejected("server_busy"), 1);
  Send(a, std::string(100, 'x'));  // a's request runs, and its reservation goes
  EXPECT_NE(Receive(a, "got 140").find("got 140"), std::string::npos);
  // The reservation goes once the request is done, which may be just after
  // its reply is sent.
  WaitUntil([&] { return h.connections().buffered() == 0; });
  ASSERT_EQ(h.connections().buffered(), 0u);
  const int c = h.Connect();
  Send(c, "PUT /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'y'));
  EXPECT_NE(Receive(c, "got 140").find("got 140"), std::string::npos);
  ::close(a);
  ::close(b);
  ::close(c);
}

TEST(Connections, RefusesHeadersOverTheLimit) {
  ConnectionOptions o = Options();
  o.max_header_bytes = 100;
  Harness h(o);
  const int s = h.Connect();
  Send(s, "GET /x HTTP/1.1\r\nX-Long: " + std::string(200, 'a'));
  EXPECT_EQ(Receive(s, "}\n").rfind("HTTP/1.1 431 ", 0), 0u);
  EXPECT_EQ(h.rejected("header_too_large"), 1);
  ::close(s);
}

TEST(Connections, TimesOutARequestThatDoesNotArriveInFull) {
  ConnectionOptions o = Options();
  o.request_timeout_s = 0.3;
  Harness h(o);
  const int s = h.Connect();
  Send(s, "GET /x HTTP/1.1\r\n");
  const std::string got = Receive(s, "}\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << got;
  EXPECT_EQ(h.requests(), 0);
  EXPECT_EQ(h.rejected("request_timeout"), 1);
  ::close(s);
}

TEST(Connections, ClosesIdleConnections) {
  ConnectionOptions o = Options();
  o.idle_timeout_s = 0.3;
  Harness h(o);
  const int s = h.Connect();
  Send(s, kGet);
  EXPECT_NE(Receive(s, "got 28").find("got 28"), std::string::npos);
  // Then nothing: the server closes (recv sees the end of the stream).
  EXPECT_EQ(Receive(s, "never"), "");
  ::close(s);
}

TEST(Connections, RefusesConnectionsBeyondTheLimitAndServesTheOthers) {
  ConnectionOptions o = Options();
  o.max_connections = 2;
  Harness h(o);
  const int a = h.Connect(), b = h.Connect();
  WaitUntil([&] { return h.connections().open() >= 2; });
  const int c = h.Connect();
  EXPECT_EQ(Receive(c, "}\n").rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u);
  EXPECT_EQ(h.rejected("connection_limit"), 1);
  Send(a, kGet);
  EXPECT_NE(Receive(a, "got 28").find("got 28"), std::string::npos);
  ::close(a);
  ::close(b);
  ::close(c);
}

TEST(Connections, SlowClientsHoldNoWorker) {
  Harness h(Options());  // 2 workers
  int slow[8];
  for (int& s : slow) {
    s = h.Connect();
    Send(s, "GET /x HTTP/1.1\r\n");  // and nothing more
  }
  const int s = h.Connect();
  Send(s, kGet);
  EXPECT_NE(Receive(s, "got 28").find("got 28"), std::string::npos);
  ::close(s);
  for (int t : slow) ::close(t);
}

}  // namespace
}  // namespace perseus::server
