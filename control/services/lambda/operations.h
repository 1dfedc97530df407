// Lambda's operations and Geysir's native ones: the one table from method and path to
// operation and handler, and the matching of a request against it.
//
// A path pattern is literal segments and placeholders: {FunctionName} (a name, ARN or partial
// ARN, possibly ":qualifier"-suffixed), {Name} (an alias), {StatementId}, {ARN} (a tag
// resource), each one whole segment, and {CodeZip}: "<64 lower-case hex digits>.zip".
// Segments are compared percent-decoded.
//
// Thread safety: the table is constant; matching is a pure function.
#pragma once

#include <span>
#include <string_view>

#include "control/services/lambda/lambda_api.h"

namespace geysir::control::lambda {

class Lambda;
struct Call;

// How a request for the operation is authorised.
enum class Authorisation {
  kSigV4,  // signed for "lambda", as every AWS client signs
  kNone,   // the health check
  kOwn,    // a signature of its own in the query (Code.Location links)
};

struct OperationSpec {
  std::string_view method;
  std::string_view path;
  Operation op;
  void (Lambda::*handler)(Call&);
  Authorisation authorisation = Authorisation::kSigV4;
};

std::span<const OperationSpec> Operations();

// The operation `method` `path` (still percent-encoded) names, with the path's parameters in
// `route`. Throws UnknownOperationException (404) for a path no operation has, and 405 for a
// path some operation has with other methods.
const OperationSpec& MatchOperation(std::string_view method, std::string_view path, Route& route);

}  // namespace geysir::control::lambda

namespace geysir::control {

// MatchOperation's route alone.
Route MatchRoute(std::string_view method, std::string_view path);

}  // namespace geysir::control
