// ApiServer: the daemon's REST API (HTTP/1.1 + JSON, cpp-httplib) on a private
// UNIX socket that WebFront passes its clients' requests to (TLS ones decrypted):
// VMs, templates, operations, the event stream, tenants, tokens, quotas, usage;
// pools and volumes (StorageApi) and networks (NetworkApi) answer their own routes. Every request but
// /openapi.json needs a bearer token; a tenant's token sees only its own
// tenant and VMs (others' are 404, as if they did not exist). Part of the HTTP
// module (base/http_module.h): the daemon makes one through makeApiService and
// drives it as an ApiService, so the executable links none of it.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/http_module.h"
#include "base/result.h"
#include "control/api_route.h"
#include "control/event_bus.h"
#include "control/operations.h"
#include "control/store.h"
#include "control/supervisor.h"
#include "control/network_api.h"
#include "control/storage_api.h"

namespace httplib {
class Server;
}

namespace strata::control {

// Every route the server answers; the OpenAPI document must describe exactly these.
std::vector<ApiRoute> apiRoutes();
// docs/api/daemon-api.openapi.json, compiled in.
const char* openApiDocument();

// The REST API server as the daemon drives it (calls through the vtable reach the module).
class ApiService {
 public:
  struct Options {
    std::string dataDir;
    std::chrono::milliseconds shutdownGrace{30000};  // before a VM that ignores shutdown is killed
  };
  virtual ~ApiService() = default;

  // Creates the socket (mode 0600: only its owner may talk to the daemon).
  virtual Result<void> listen(const std::string& socketPath) = 0;
  // Serves the files under `dir` at `prefix` (the dashboard); no token needed, they hold no data.
  virtual void mountStatic(const std::string& prefix, const std::string& dir) = 0;
  // Before serving: drops volumes a killed daemon left half made, starts the host switch if networks need it.
  virtual void recoverResources() = 0;
  virtual void run() = 0;   // serves until stop()
  virtual void stop() = 0;  // safe from another thread
};

using MakeApiService = std::unique_ptr<ApiService>(Store& store, Supervisor& supervisor, ApiService::Options options);
extern http_module::Entry<MakeApiService> makeApiService;

class ApiServer : public ApiService {
 public:
  ApiServer(Store& store, Supervisor& supervisor, Options options);
  ~ApiServer() override;

  Result<void> listen(const std::string& socketPath) override;
  void mountStatic(const std::string& prefix, const std::string& dir) override;
  void recoverResources() override;
  void run() override;
  void stop() override;

 struct Handlers;  // the route handlers, defined with the route table in api_server.cpp

 private:
  void serveRoutesOn(httplib::Server& server);

  Store& store_;
  Supervisor& supervisor_;
  Options options_;
  std::unique_ptr<httplib::Server> server_;
  std::shared_ptr<Handlers> handlers_;
  // Shared with the store's VM observer, which the supervisor's thread may call after this server is gone.
  std::shared_ptr<EventBus> events_ = std::make_shared<EventBus>();
  // Held while a VM is defined from a template's snapshot and while replaced snapshots are removed.
  std::mutex templateSnapshots_;
  Operations operations_;  // after events_ and templateSnapshots_: a finishing operation uses them
  StorageApi storage_;
  NetworkApi networks_;
};

}  // namespace strata::control
