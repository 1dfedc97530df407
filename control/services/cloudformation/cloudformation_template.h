// CloudFormation's template language, as far as Geysir's stacks need it: parsing and checking a
// JSON template, the order resources must be created in, and resolving intrinsic functions
// against a stack's parameters and the physical ids of resources already made.
//
// Supported: sections AWSTemplateFormatVersion, Description, Metadata, Parameters (Type String,
// Number, CommaDelimitedList, List<Number>, Default, AllowedValues), Resources (Type,
// Properties, DependsOn, DeletionPolicy/UpdateReplacePolicy/Metadata accepted and ignored),
// Outputs (Value, Description, Export.Name); intrinsics Ref (resources, parameters, pseudo
// parameters AWS::Region, AWS::AccountId, AWS::StackName, AWS::StackId, AWS::Partition,
// AWS::URLSuffix, AWS::NoValue), Fn::GetAtt (list and "A.B" forms), Fn::Join, Fn::Sub (both
// forms), Fn::Select, Fn::Split, Fn::Base64. Not supported, refused with a ValidationError-worded
// message that names them: YAML templates, Conditions / Fn::If and friends, Mappings /
// Fn::FindInMap, Transform, Fn::ImportValue, Fn::GetAZs, Fn::Cidr.
//
// Error messages follow AWS's wording ("Template format error: ...", "Unresolved resource
// dependencies [X] in the Resources block of the template", "Circular dependency between
// resources: [A, B]") so clients and people recognise them.
//
// Thread safety: values and pure functions.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace geysir::control::cfn {

struct TemplateParameter {
  std::string name;
  std::string type = "String";
  std::optional<std::string> default_value;
  std::vector<std::string> allowed_values;
  bool no_echo = false;
  std::string description;
};

struct TemplateResource {
  std::string logical_id;
  std::string type;
  nlohmann::json properties = nlohmann::json::object();  // unresolved, as written
  std::set<std::string> depends_on;  // explicit DependsOn plus every resource it references
};

struct Template {
  std::string description;
  std::vector<TemplateParameter> parameters;
  // In an order where every resource comes after everything it depends on (ties broken by
  // logical id, so the order is stable).
  std::vector<TemplateResource> resources;
  nlohmann::json outputs = nlohmann::json::object();  // {Name: {Value, Description, Export}}

  const TemplateResource* Find(std::string_view logical_id) const;
};

// Parses and checks `body`. `supported(type)` says whether a resource type can be made; the
// unsupported ones are listed together in one error:
//   "Template format error: Unrecognized resource types: [AWS::SQS::Queue]"
// (kInvalidArgument; the message is what the ValidationError says).
Result<Template> ParseTemplate(std::string_view body, const std::function<bool(std::string_view)>& supported);

// The parameter values a stack runs with: `given` checked against the template (unknown keys,
// missing values without a Default, AllowedValues), defaults filled in.
Result<std::map<std::string, std::string>> BindParameters(const Template& t,
                                                          const std::map<std::string, std::string>& given);

// What intrinsic functions resolve against.
struct ResolveContext {
  std::map<std::string, std::string> parameters;  // bound parameter values
  std::map<std::string, std::string> pseudo;      // "AWS::Region" -> "us-east-1", ...
  // A resource's Ref value (its physical id); nullopt when it has none (yet).
  std::function<std::optional<std::string>(const std::string& logical_id)> ref;
  // A resource attribute; nullopt when the resource does not have it.
  std::function<std::optional<nlohmann::json>(const std::string& logical_id, const std::string& attribute)> get_att;
};

// The pseudo parameters of a stack.
std::map<std::string, std::string> PseudoParameters(const std::string& region, const std::string& account_id,
                                                    const std::string& stack_name, const std::string& stack_id);

// `value` with every intrinsic function evaluated; properties that resolve to AWS::NoValue are
// dropped. kInvalidArgument naming the function when something cannot be resolved.
Result<nlohmann::json> Resolve(const nlohmann::json& value, const ResolveContext& ctx);

}  // namespace geysir::control::cfn
