// ApiRoute: one route of the daemon's REST API in its OpenAPI form (the
// OpenAPI document is tested against every unit's route table), who may call
// it, and the table entry of a unit that answers routes with member functions.
#pragma once

#include <string>

namespace strata::control {

struct ApiRoute {
  std::string method;  // GET, POST, PUT, DELETE
  std::string path;    // OpenAPI form: /vms/{name}/start
};

enum class Access { Anyone, Token, Admin };  // who may call a route

struct Call;
// A route a unit answers with one of its member functions.
template <typename Api>
struct MemberRoute {
  ApiRoute route;
  Access access;
  void (Api::*handle)(Call&);
};

}  // namespace strata::control
