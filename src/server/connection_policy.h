// How the HTTP server treats client connections (see http_transport.h for what each bound does).
#pragma once

#include <chrono>

namespace tandem::server {

struct ConnectionPolicy {
  std::chrono::milliseconds header_timeout{10'000};     // first byte of a request -> end of its head
  std::chrono::milliseconds body_timeout{30'000};       // end of the head -> end of the body
  std::chrono::milliseconds keep_alive_timeout{5'000};  // idle between requests
  std::chrono::milliseconds read_idle_timeout{5'000};   // silence within a request (as httplib's read timeout)
  int max_connections_per_client = 128;                 // per client address; 0: no limit
  int listen_backlog = 1024;                            // the kernel caps it at net.core.somaxconn
};

}  // namespace tandem::server
