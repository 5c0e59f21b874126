// GuardedHttpServer: cpp-httplib's server (Debian's 0.11) with connection handling that slow or idle clients
// cannot starve.
//
// - It listens on a socket of its own with a large backlog (httplib's is 5), so bursts of connections queue
//   in the kernel instead of being dropped and retried seconds later.
// - Every connection is served by a loop of its own (httplib's private virtual process_and_close_socket is
//   overridden; process_request, which parses and routes, is still httplib's): a
//   request's head must be complete within header_timeout of its first byte and its body within
//   body_timeout after the head, whatever the pace of the bytes, and no read waits longer than
//   read_idle_timeout; a connection idle between requests is closed after keep_alive_timeout. A request
//   that runs out of time is answered by httplib (400) or dropped.
//   Waits end within 100 ms of stop(), so slow clients do not delay shutdown.
// - At most max_connections_per_client connections of one client address are served at once; more are
//   answered 429 with an OpenAI error object and closed. With a thread pool larger than that limit, one
//   address can never hold every thread.
// - peer_connected(request) tells a handler whether its client is still there (the socket is neither closed
//   nor shut down by the peer), so that long non-streaming work can be cancelled when it goes away.
// - With use_tls(), every connection speaks TLS (OpenSSL, 1.2 or newer): the handshake must finish within
//   header_timeout, and the same deadlines bound reads and writes of TLS records (non-blocking sockets).
//   A client over the per-address limit is closed without an answer (no handshake is spent on it).
#pragma once

#include <httplib.h>

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "core/status.h"
#include "server/connection_policy.h"

struct ssl_ctx_st;

namespace tandem::server {

class GuardedHttpServer : public httplib::Server {
 public:
  explicit GuardedHttpServer(ConnectionPolicy policy) : policy_(policy) {}
  ~GuardedHttpServer() override;
  GuardedHttpServer(const GuardedHttpServer&) = delete;
  GuardedHttpServer& operator=(const GuardedHttpServer&) = delete;

  // Serve HTTPS with this certificate chain and private key (PEM files); call before bind_and_listen().
  // Fails with the reason when a file cannot be read or the key does not match the certificate.
  Status use_tls(const std::string& cert_file, const std::string& key_file);

  // Binds host:port (0: any free port) and listens; returns the port. Then serve with listen_after_bind().
  Result<int> bind_and_listen(const std::string& host, int port);
  bool peer_connected(const httplib::Request& request) const;

 private:
  using PeerKey = std::pair<std::string, int>;  // address, port
  bool process_and_close_socket(socket_t sock) override;
  bool admit(const std::string& address);
  void release(const std::string& address);

  ConnectionPolicy policy_;
  ssl_ctx_st* tls_ = nullptr;  // owned (SSL_CTX); null: plain HTTP
  mutable std::mutex mutex_;
  std::map<std::string, int> per_address_;  // guarded by mutex_: connections being served per client address
  std::map<PeerKey, socket_t> sockets_;      // guarded by mutex_: the socket of each connection being served
};

}  // namespace tandem::server
