#include "server/http_transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <string_view>

#include <fmt/format.h>

namespace tandem::server {

// process_and_close_socket() replaces httplib's per-connection loop and relies on what Server exposes to
// subclasses in 0.11 (process_request, svr_sock_, keep_alive_max_count_): check them again on another version.
static_assert(std::string_view(CPPHTTPLIB_VERSION).starts_with("0.11."), "GuardedHttpServer targets cpp-httplib 0.11");

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWriteTimeout = std::chrono::seconds(5);
constexpr auto kStopCheckInterval = std::chrono::milliseconds(100);

// Waits up to `timeout` for `events` on `fd`; the revents, 0 on timeout, -1 on error.
int wait_for(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  const int ms = static_cast<int>(std::max<int64_t>(0, timeout.count()));
  int n;
  do {
    n = ::poll(&p, 1, ms);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  return n == 0 ? 0 : p.revents;
}

// Whether the peer is still connected: no hang-up, no shutdown of its side, no error. Data waiting (a
// pipelined request) counts as connected.
bool socket_alive(int fd) {
  const int r = wait_for(fd, POLLIN | POLLRDHUP, std::chrono::milliseconds(0));
  if (r < 0 || (r & (POLLHUP | POLLERR | POLLNVAL | POLLRDHUP))) return false;
  if (!(r & POLLIN)) return true;
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

void address_of(const sockaddr_storage& sa, socklen_t len, std::string& ip, int& port) {
  std::array<char, NI_MAXHOST> host{};
  std::array<char, NI_MAXSERV> serv{};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&sa), len, host.data(), host.size(), serv.data(), serv.size(),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host.data();
    port = std::atoi(serv.data());
  }
}

void peer_of(int fd, std::string& ip, int& port) {
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0) address_of(sa, len, ip, port);
}

// One client connection as httplib's Stream: reads are buffered and bounded by the deadline of the phase
// the request is in (head, then body), writes by kWriteTimeout.
class ClientStream final : public httplib::Stream {
 public:
  // `stopping` says when the server is stopping: waits for the client end then.
  // `ssl`: the connection's TLS session (handshake done, socket non-blocking), or null for plain HTTP.
  ClientStream(int fd, SSL* ssl, const ConnectionPolicy& policy, std::function<bool()> stopping)
      : fd_(fd), ssl_(ssl), policy_(policy), stopping_(std::move(stopping)) {}

  // Waits for the first byte of the next request; false when the connection stays idle past the keep-alive
  // timeout, is closed, or the server stops.
  bool wait_for_request() {
    if (buffered() > 0 || tls_pending()) return start_request();
    return readable_before(Clock::now() + policy_.keep_alive_timeout) && start_request();
  }

  bool is_readable() const override { return buffered() > 0 || tls_pending() || readable_before(read_deadline()); }
  bool is_writable() const override {
    return wait_for(fd_, POLLOUT, std::chrono::duration_cast<std::chrono::milliseconds>(kWriteTimeout)) > 0 &&
           socket_alive(fd_);
  }

  ssize_t read(char* ptr, size_t size) override {
    if (buffered() == 0) {
      const ssize_t n = receive();
      if (n <= 0) return n;
      begin_ = 0;
      end_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, buffered());
    std::memcpy(ptr, buffer_.data() + begin_, n);
    note_delivered(buffer_.data() + begin_, n);
    begin_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    if (ssl_) return tls_write(ptr, size);
    ssize_t n;
    do {
      n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { peer_of(fd_, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage sa{};
    socklen_t len = sizeof(sa);
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) == 0) address_of(sa, len, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  size_t buffered() const { return end_ - begin_; }
  bool tls_pending() const { return ssl_ && SSL_pending(ssl_) > 0; }

  // Fills the buffer from the connection: > 0 bytes, 0 closed, -1 failed or too slow (or the server stops).
  ssize_t receive() {
    for (;;) {
      if (!tls_pending() && !readable_before(read_deadline())) return -1;
      if (!ssl_) {
        ssize_t n;
        do {
          n = ::recv(fd_, buffer_.data(), buffer_.size(), 0);
        } while (n < 0 && errno == EINTR);
        return n;
      }
      const int n = SSL_read(ssl_, buffer_.data(), static_cast<int>(buffer_.size()));
      if (n > 0) return n;
      switch (SSL_get_error(ssl_, n)) {
        case SSL_ERROR_WANT_READ: continue;  // a record not yet complete: wait for the rest
        case SSL_ERROR_WANT_WRITE:
          if (wait_for(fd_, POLLOUT, std::chrono::duration_cast<std::chrono::milliseconds>(kWriteTimeout)) <= 0) return -1;
          continue;
        case SSL_ERROR_ZERO_RETURN: return 0;  // close_notify
        default: return -1;
      }
    }
  }

  // SSL_write on the non-blocking socket, waiting (up to kWriteTimeout each time) while the socket is full.
  ssize_t tls_write(const char* ptr, size_t size) {
    for (;;) {
      const int n = SSL_write(ssl_, ptr, static_cast<int>(std::min<size_t>(size, 1 << 30)));
      if (n > 0) return n;
      const int e = SSL_get_error(ssl_, n);
      const short events = e == SSL_ERROR_WANT_WRITE ? POLLOUT : e == SSL_ERROR_WANT_READ ? POLLIN : 0;
      if (events == 0 ||
          wait_for(fd_, events, std::chrono::duration_cast<std::chrono::milliseconds>(kWriteTimeout)) <= 0) {
        return -1;
      }
    }
  }

  bool start_request() {
    in_head_ = true;
    tail_ = 0;
    deadline_ = Clock::now() + policy_.header_timeout;
    return true;
  }

  // The phase's deadline, or read_idle_timeout from now when that comes first.
  Clock::time_point read_deadline() const { return std::min(deadline_, Clock::now() + policy_.read_idle_timeout); }

  // Waits until the socket is readable (true), or `deadline` passes, it fails or the server stops (false).
  bool readable_before(Clock::time_point deadline) const {
    while (!stopping_()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      const int r = wait_for(fd_, POLLIN, std::min<std::chrono::milliseconds>(left, kStopCheckInterval));
      if (r != 0) return r > 0;
    }
    return false;
  }

  // Follows the bytes handed to httplib: the empty line that ends the head starts the body's deadline.
  void note_delivered(const char* p, size_t n) {
    for (size_t i = 0; i < n && in_head_; ++i) {
      tail_ = (tail_ << 8) | static_cast<uint8_t>(p[i]);
      if ((tail_ & 0xFFFFFFFFu) == 0x0D0A0D0Au || (tail_ & 0xFFFFu) == 0x0A0Au) {
        in_head_ = false;
        deadline_ = Clock::now() + policy_.body_timeout;
      }
    }
  }

  int fd_;
  SSL* ssl_;
  const ConnectionPolicy& policy_;
  std::function<bool()> stopping_;
  std::array<char, 4096> buffer_{};
  size_t begin_ = 0, end_ = 0;
  bool in_head_ = true;
  uint32_t tail_ = 0;  // the last bytes of the head, to find its end
  Clock::time_point deadline_ = Clock::now();
};

// OpenSSL's queued errors as one line (and clears the queue).
std::string tls_errors() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    std::array<char, 256> text{};
    ERR_error_string_n(e, text.data(), text.size());
    if (!out.empty()) out += "; ";
    out += text.data();
  }
  return out.empty() ? "unknown TLS error" : out;
}

// The server side of a TLS handshake on `fd` (made non-blocking), within `timeout`; the session, or null.
SSL* accept_tls(SSL_CTX* ctx, int fd, std::chrono::milliseconds timeout, const std::function<bool()>& stopping) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return nullptr;
  SSL* ssl = SSL_new(ctx);
  if (!ssl || SSL_set_fd(ssl, fd) != 1) {
    if (ssl) SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const int r = SSL_accept(ssl);
    if (r == 1) return ssl;
    const int e = SSL_get_error(ssl, r);
    const short events = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (events == 0 || left.count() <= 0 || stopping() ||
        wait_for(fd, events, std::min<std::chrono::milliseconds>(left, kStopCheckInterval)) < 0) {
      ERR_clear_error();  // a client that is not speaking TLS, or too slowly: nothing to report
      SSL_free(ssl);
      return nullptr;
    }
  }
}

void refuse(int fd, const std::string& address, int limit) {
  const std::string body = fmt::format(
      R"json({{"error":{{"message":"too many connections from {} (at most {} at once)","type":"rate_limit_error","param":null,"code":"too_many_connections"}}}})json",
      address, limit);
  const std::string response = fmt::format(
      "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n"
      "Retry-After: 1\r\n\r\n{}", body.size(), body);
  (void)::send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

// The owner stops the server and joins its listener (which joins the connection threads) first.
GuardedHttpServer::~GuardedHttpServer() {
  if (tls_) SSL_CTX_free(tls_);
}

Status GuardedHttpServer::use_tls(const std::string& cert_file, const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return Status::error("TLS: " + tls_errors());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  std::string why;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    why = fmt::format("cannot use certificate file {}: {}", cert_file, tls_errors());
  } else if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    why = fmt::format("cannot use key file {}: {}", key_file, tls_errors());
  } else if (SSL_CTX_check_private_key(ctx) != 1) {
    why = fmt::format("key file {} does not match certificate {}: {}", key_file, cert_file, tls_errors());
  }
  if (!why.empty()) {
    SSL_CTX_free(ctx);
    return Status::error("TLS: " + why);
  }
  if (tls_) SSL_CTX_free(tls_);
  tls_ = ctx;
  return Status::ok();
}

Result<int> GuardedHttpServer::bind_and_listen(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int e = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found); e != 0) {
    return Status::error(fmt::format("cannot resolve {}: {}", host, gai_strerror(e)));
  }
  int fd = -1;
  std::string why = "no address";
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, policy_.listen_backlog) != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return Status::error(fmt::format("cannot listen on {}:{}: {}", host, port, why));
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  std::string ip;
  int bound = port;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0) address_of(sa, len, ip, bound);
  svr_sock_ = fd;  // httplib's accept loop (listen_after_bind) serves this socket and closes it on stop()
  return bound;
}

bool GuardedHttpServer::admit(const std::string& address) {
  std::lock_guard lock(mutex_);
  int& n = per_address_[address];
  if (policy_.max_connections_per_client > 0 && n >= policy_.max_connections_per_client) {
    if (n == 0) per_address_.erase(address);
    return false;
  }
  ++n;
  return true;
}

void GuardedHttpServer::release(const std::string& address) {
  std::lock_guard lock(mutex_);
  auto it = per_address_.find(address);
  if (it != per_address_.end() && --it->second <= 0) per_address_.erase(it);
}

bool GuardedHttpServer::peer_connected(const httplib::Request& request) const {
  socket_t fd;
  {
    std::lock_guard lock(mutex_);
    auto it = sockets_.find(PeerKey{request.remote_addr, request.remote_port});
    if (it == sockets_.end()) return false;
    fd = it->second;  // stays open: the connection's session is the caller of the handler asking
  }
  return socket_alive(fd);
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  PeerKey peer{"", -1};
  peer_of(sock, peer.first, peer.second);
  bool ok = false;
  const std::function<bool()> stopping = [this] { return svr_sock_ == INVALID_SOCKET; };
  SSL* ssl = nullptr;
  if (!admit(peer.first)) {
    if (!tls_) refuse(sock, peer.first, policy_.max_connections_per_client);
  } else if (tls_ && !(ssl = accept_tls(tls_, sock, policy_.header_timeout, stopping))) {
    release(peer.first);
  } else {
    {
      std::lock_guard lock(mutex_);
      sockets_[peer] = sock;
    }
    ClientStream stream(sock, ssl, policy_, stopping);
    for (size_t left = keep_alive_max_count_; left > 0 && stream.wait_for_request(); --left) {
      bool connection_closed = false;
      ok = process_request(stream, left == 1, connection_closed, nullptr);
      if (!ok || connection_closed) break;
    }
    {
      std::lock_guard lock(mutex_);
      sockets_.erase(peer);
    }
    release(peer.first);
  }
  if (ssl) {
    SSL_shutdown(ssl);  // best effort close_notify (non-blocking)
    SSL_free(ssl);
    ERR_clear_error();
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace tandem::server
