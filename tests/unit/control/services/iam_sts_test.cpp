// IAM and STS (control/services/iam_sts.h) as boto3 and the AWS CLI meet them: control stood up
// whole (control_harness.h), each request form-encoded in the query protocol and signed with
// SigV4 for "iam" or "sts", each answer read as the XML botocore parses — the Result elements of
// a success, <ErrorResponse><Error><Type/><Code/><Message/></Error> of a refusal.
#include "control/services/iam_sts.h"

#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "net/http_server.h"
#include "tests/unit/control/control_harness.h"

namespace geysir::control {
namespace {

namespace ct = geysir::control::testing;

constexpr const char* kIamXmlns = "https://iam.amazonaws.com/doc/2010-05-08/";
constexpr const char* kStsXmlns = "https://sts.amazonaws.com/doc/2011-06-15/";
constexpr const char* kTrust =
    R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]})";
constexpr const char* kLogsPolicy =
    R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]})";

using Params = std::vector<std::pair<std::string, std::string>>;

// A query-protocol body as botocore sends it: Action, Version, then the parameters.
std::string Form(const std::string& action, const std::string& version, const Params& params) {
  std::string out = "Action=" + action + "&Version=" + version;
  for (const auto& [k, v] : params) out += "&" + net::PercentEncode(k) + "=" + net::PercentEncode(v);
  return out;
}

ct::CallOptions Signed(const char* service) {
  ct::CallOptions o;
  o.service = service;
  o.content_type = "application/x-www-form-urlencoded; charset=utf-8";
  return o;
}

ct::Reply Iam(ct::Client& c, const std::string& action, const Params& params = {}, ct::CallOptions o = Signed("iam")) {
  return c.Call("POST", "/", Form(action, "2010-05-08", params), o);
}

ct::Reply Sts(ct::Client& c, const std::string& action, const Params& params = {}) {
  return c.Call("POST", "/", Form(action, "2011-06-15", params), Signed("sts"));
}

// Element text as an XML parser (botocore's) reads it: the five predefined entities decoded.
std::string Unescape(const std::string& text) {
  static const std::pair<const char*, char> kEntities[] = {
      {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}, {"&amp;", '&'}};
  std::string out;
  for (size_t i = 0; i < text.size();) {
    bool matched = false;
    for (const auto& [entity, ch] : kEntities) {
      if (text.compare(i, std::char_traits<char>::length(entity), entity) == 0) {
        out.push_back(ch);
        i += std::char_traits<char>::length(entity);
        matched = true;
        break;
      }
    }
    if (!matched) out.push_back(text[i++]);
  }
  return out;
}

// The text of the first <tag>...</tag> in `xml` ("" when absent).
std::string Text(const std::string& xml, const std::string& tag) {
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  size_t a = xml.find(open);
  if (a == std::string::npos) return "";
  a += open.size();
  size_t b = xml.find(close, a);
  return b == std::string::npos ? "" : Unescape(xml.substr(a, b - a));
}

// Every <tag>...</tag> text in `xml`, in order.
std::vector<std::string> Texts(const std::string& xml, const std::string& tag) {
  std::vector<std::string> out;
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  for (size_t at = xml.find(open); at != std::string::npos; at = xml.find(open, at)) {
    at += open.size();
    size_t end = xml.find(close, at);
    if (end == std::string::npos) break;
    out.push_back(Unescape(xml.substr(at, end - at)));
    at = end;
  }
  return out;
}

bool Has(const std::string& xml, const std::string& fragment) { return xml.find(fragment) != std::string::npos; }

// A query-protocol error as botocore reads it.
void CheckError(const ct::Reply& r, int status, const std::string& code, const std::string& xmlns = kIamXmlns) {
  INFO(r.body);
  CHECK(r.status == status);
  CHECK(r.Header("content-type") == "text/xml");
  CHECK(Has(r.body, "<ErrorResponse xmlns=\"" + xmlns + "\"><Error>"));
  CHECK(Text(r.body, "Type") == (status >= 500 ? "Receiver" : "Sender"));
  CHECK(Text(r.body, "Code") == code);
  CHECK_FALSE(Text(r.body, "RequestId").empty());
}

}  // namespace

TEST_CASE("iam: CreateRole, GetRole and ListRoles in IAM's XML shapes", "[control][iam]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    ct::Reply made = Iam(c, "CreateRole",
                         {{"RoleName", "web-exec"},
                          {"AssumeRolePolicyDocument", kTrust},
                          {"Path", "/service/"},
                          {"Description", "runs web"},
                          {"Tags.member.1.Key", "team"},
                          {"Tags.member.1.Value", "edge"}});
    INFO(made.body);
    REQUIRE(made.status == 200);
    CHECK(made.Header("content-type") == "text/xml");
    CHECK(Has(made.body, std::string("<CreateRoleResponse xmlns=\"") + kIamXmlns + "\"><CreateRoleResult><Role>"));
    CHECK(Text(made.body, "RoleName") == "web-exec");
    CHECK(Text(made.body, "Path") == "/service/");
    CHECK(Text(made.body, "Arn") == "arn:aws:iam::000000000000:role/service/web-exec");
    CHECK(Text(made.body, "RoleId").rfind("AROA", 0) == 0);
    CHECK(Text(made.body, "Description") == "runs web");
    CHECK(Text(made.body, "MaxSessionDuration") == "3600");
    // Policy documents travel URL-encoded; botocore decodes them back into a dict.
    CHECK(net::PercentDecode(Text(made.body, "AssumeRolePolicyDocument"), false) == kTrust);
    CHECK(Text(made.body, "CreateDate").size() == 24);  // 2026-11-27T08:30:00.000Z
    CHECK(Has(made.body, "<Tags><member><Key>team</Key><Value>edge</Value></member></Tags>"));
    CHECK(Text(made.body, "RequestId") == made.Header("x-amzn-requestid"));

    ct::Reply got = Iam(c, "GetRole", {{"RoleName", "web-exec"}});
    REQUIRE(got.status == 200);
    CHECK(Has(got.body, "<GetRoleResult><Role>"));
    CHECK(Text(got.body, "RoleId") == Text(made.body, "RoleId"));
    CHECK(Text(got.body, "Arn") == Text(made.body, "Arn"));
    // Role names are case-insensitive, as on AWS.
    CHECK(Text(Iam(c, "GetRole", {{"RoleName", "WEB-EXEC"}}).body, "RoleName") == "web-exec");

    REQUIRE(Iam(c, "CreateRole", {{"RoleName", "batch"}, {"AssumeRolePolicyDocument", kTrust}}).status == 200);
    REQUIRE(Iam(c, "CreateRole", {{"RoleName", "alpha"}, {"AssumeRolePolicyDocument", kTrust}}).status == 200);
    ct::Reply all = Iam(c, "ListRoles");
    REQUIRE(all.status == 200);
    CHECK(Has(all.body, "<ListRolesResult><Roles><member>"));
    CHECK(Texts(all.body, "RoleName") == std::vector<std::string>{"alpha", "batch", "web-exec"});
    CHECK(Text(all.body, "IsTruncated") == "false");
    ct::Reply service = Iam(c, "ListRoles", {{"PathPrefix", "/service/"}});
    CHECK(Texts(service.body, "RoleName") == std::vector<std::string>{"web-exec"});

    // Pages: MaxItems, then the Marker the previous page handed out.
    ct::Reply page1 = Iam(c, "ListRoles", {{"MaxItems", "2"}});
    CHECK(Texts(page1.body, "RoleName") == std::vector<std::string>{"alpha", "batch"});
    CHECK(Text(page1.body, "IsTruncated") == "true");
    REQUIRE(Text(page1.body, "Marker") == "web-exec");
    ct::Reply page2 = Iam(c, "ListRoles", {{"MaxItems", "2"}, {"Marker", "web-exec"}});
    CHECK(Texts(page2.body, "RoleName") == std::vector<std::string>{"web-exec"});
    CHECK(Text(page2.body, "IsTruncated") == "false");
    CheckError(Iam(c, "ListRoles", {{"Marker", "nobody"}}), 400, "ValidationError");
    CheckError(Iam(c, "ListRoles", {{"MaxItems", "0"}}), 400, "ValidationError");
  });
}

TEST_CASE("iam: what CreateRole refuses", "[control][iam]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    REQUIRE(Iam(c, "CreateRole", {{"RoleName", "web"}, {"AssumeRolePolicyDocument", kTrust}}).status == 200);
    ct::Reply taken = Iam(c, "CreateRole", {{"RoleName", "Web"}, {"AssumeRolePolicyDocument", kTrust}});
    CheckError(taken, 409, "EntityAlreadyExists");
    CHECK(Text(taken.body, "Message") == "Role with name Web already exists.");

    ct::Reply no_name = Iam(c, "CreateRole", {{"AssumeRolePolicyDocument", kTrust}});
    CheckError(no_name, 400, "ValidationError");
    CHECK(Text(no_name.body, "Message") ==
          "1 validation error detected: Value null at 'roleName' failed to satisfy constraint: Member must not be null");
    CheckError(Iam(c, "CreateRole", {{"RoleName", "no spaces"}, {"AssumeRolePolicyDocument", kTrust}}), 400,
               "ValidationError");
    CheckError(Iam(c, "CreateRole", {{"RoleName", std::string(65, 'r')}, {"AssumeRolePolicyDocument", kTrust}}), 400,
               "ValidationError");
    CheckError(Iam(c, "CreateRole", {{"RoleName", "p"}, {"AssumeRolePolicyDocument", kTrust}, {"Path", "service"}}), 400,
               "ValidationError");
    CheckError(Iam(c, "CreateRole", {{"RoleName", "p"}, {"AssumeRolePolicyDocument", "[1,2]"}}), 400,
               "MalformedPolicyDocument");
    CheckError(Iam(c, "CreateRole", {{"RoleName", "p"}, {"AssumeRolePolicyDocument", "{not json"}}), 400,
               "MalformedPolicyDocument");
    for (const char* bad : {"3599", "43201", "1e4", "+3600", "3600.0", ""}) {
      INFO("MaxSessionDuration '" << bad << "'");
      CheckError(Iam(c, "CreateRole", {{"RoleName", "p"}, {"AssumeRolePolicyDocument", kTrust}, {"MaxSessionDuration", bad}}),
                 400, "ValidationError");
    }
    // None of the refusals made a role.
    CHECK(Texts(Iam(c, "ListRoles").body, "RoleName") == std::vector<std::string>{"web"});

    ct::Reply unknown = Iam(c, "CreateUser", {{"UserName", "bob"}});
    CheckError(unknown, 400, "InvalidAction");
    CHECK(Text(unknown.body, "Message").rfind("Could not find operation CreateUser for version 2010-05-08", 0) == 0);
  });
}

TEST_CASE("iam: UpdateRole, UpdateAssumeRolePolicy, tags and DeleteRole", "[control][iam]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    REQUIRE(Iam(c, "CreateRole", {{"RoleName", "web"}, {"AssumeRolePolicyDocument", kTrust}}).status == 200);

    ct::Reply updated = Iam(c, "UpdateRole", {{"RoleName", "web"}, {"Description", "now described"}, {"MaxSessionDuration", "7200"}});
    REQUIRE(updated.status == 200);
    CHECK(Has(updated.body, "<UpdateRoleResult></UpdateRoleResult>"));
    ct::Reply got = Iam(c, "GetRole", {{"RoleName", "web"}});
    CHECK(Text(got.body, "Description") == "now described");
    CHECK(Text(got.body, "MaxSessionDuration") == "7200");

    const std::string other = R"({"Version":"2012-10-17","Statement":[]})";
    ct::Reply trust = Iam(c, "UpdateAssumeRolePolicy", {{"RoleName", "web"}, {"PolicyDocument", other}});
    REQUIRE(trust.status == 200);
    CHECK(Has(trust.body, "<UpdateAssumeRolePolicyResponse"));
    CHECK_FALSE(Has(trust.body, "<UpdateAssumeRolePolicyResult>"));  // the bare form
    CHECK(net::PercentDecode(Text(Iam(c, "GetRole", {{"RoleName", "web"}}).body, "AssumeRolePolicyDocument"), false) == other);
    CheckError(Iam(c, "UpdateAssumeRolePolicy", {{"RoleName", "web"}, {"PolicyDocument", "nope"}}), 400,
               "MalformedPolicyDocument");

    REQUIRE(Iam(c, "TagRole", {{"RoleName", "web"}, {"Tags.member.1.Key", "a"}, {"Tags.member.1.Value", "1"},
                               {"Tags.member.2.Key", "b"}, {"Tags.member.2.Value", "2"}}).status == 200);
    REQUIRE(Iam(c, "TagRole", {{"RoleName", "web"}, {"Tags.member.1.Key", "a"}, {"Tags.member.1.Value", "changed"}}).status ==
            200);
    ct::Reply tags = Iam(c, "ListRoleTags", {{"RoleName", "web"}});
    REQUIRE(tags.status == 200);
    CHECK(Texts(tags.body, "Key") == std::vector<std::string>{"a", "b"});
    CHECK(Texts(tags.body, "Value") == std::vector<std::string>{"changed", "2"});
    ct::Reply first_tag = Iam(c, "ListRoleTags", {{"RoleName", "web"}, {"MaxItems", "1"}});
    CHECK(Texts(first_tag.body, "Key") == std::vector<std::string>{"a"});
    CHECK(Text(first_tag.body, "Marker") == "b");

    ct::Reply deleted = Iam(c, "DeleteRole", {{"RoleName", "web"}});
    REQUIRE(deleted.status == 200);
    CHECK(Has(deleted.body, std::string("<DeleteRoleResponse xmlns=\"") + kIamXmlns + "\"><ResponseMetadata>"));
    ct::Reply gone = Iam(c, "GetRole", {{"RoleName", "web"}});
    CheckError(gone, 404, "NoSuchEntity");
    CHECK(Text(gone.body, "Message") == "The role with name web cannot be found.");
    CheckError(Iam(c, "DeleteRole", {{"RoleName", "web"}}), 404, "NoSuchEntity");
    CheckError(Iam(c, "UpdateRole", {{"RoleName", "web"}}), 404, "NoSuchEntity");
    CheckError(Iam(c, "TagRole", {{"RoleName", "web"}}), 404, "NoSuchEntity");
  });
}

TEST_CASE("iam: inline role policies", "[control][iam]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    REQUIRE(Iam(c, "CreateRole", {{"RoleName", "web"}, {"AssumeRolePolicyDocument", kTrust}}).status == 200);
    CheckError(Iam(c, "PutRolePolicy", {{"RoleName", "nobody"}, {"PolicyName", "logs"}, {"PolicyDocument", kLogsPolicy}}),
               404, "NoSuchEntity");
    CheckError(Iam(c, "PutRolePolicy", {{"RoleName", "web"}, {"PolicyName", "logs"}, {"PolicyDocument", "\"str\""}}), 400,
               "MalformedPolicyDocument");
    CheckError(Iam(c, "PutRolePolicy", {{"RoleName", "web"}, {"PolicyName", "logs"}, {"PolicyDocument", std::string(10300, ' ') + "{}"}}),
               400, "LimitExceeded");

    ct::Reply put = Iam(c, "PutRolePolicy", {{"RoleName", "web"}, {"PolicyName", "logs"}, {"PolicyDocument", kLogsPolicy}});
    REQUIRE(put.status == 200);
    REQUIRE(Iam(c, "PutRolePolicy", {{"RoleName", "web"}, {"PolicyName", "db"}, {"PolicyDocument", kLogsPolicy}}).status == 200);

    ct::Reply got = Iam(c, "GetRolePolicy", {{"RoleName", "web"}, {"PolicyName", "logs"}});
    REQUIRE(got.status == 200);
    CHECK(Has(got.body, "<GetRolePolicyResult><RoleName>web</RoleName><PolicyName>logs</PolicyName>"));
    CHECK(net::PercentDecode(Text(got.body, "PolicyDocument"), false) == kLogsPolicy);
    ct::Reply listed = Iam(c, "ListRolePolicies", {{"RoleName", "web"}});
    REQUIRE(listed.status == 200);
    CHECK(Has(listed.body, "<ListRolePoliciesResult><PolicyNames><member>"));
    CHECK(Texts(listed.body, "member") == std::vector<std::string>{"db", "logs"});

    // A role with policies cannot be deleted until they are.
    ct::Reply conflict = Iam(c, "DeleteRole", {{"RoleName", "web"}});
    CheckError(conflict, 409, "DeleteConflict");
    CHECK(Text(conflict.body, "Message") == "Cannot delete entity, must delete policies first.");

    REQUIRE(Iam(c, "DeleteRolePolicy", {{"RoleName", "web"}, {"PolicyName", "logs"}}).status == 200);
    ct::Reply missing = Iam(c, "GetRolePolicy", {{"RoleName", "web"}, {"PolicyName", "logs"}});
    CheckError(missing, 404, "NoSuchEntity");
    CHECK(Text(missing.body, "Message") == "The role policy with name logs cannot be found.");
    CheckError(Iam(c, "DeleteRolePolicy", {{"RoleName", "web"}, {"PolicyName", "logs"}}), 404, "NoSuchEntity");
    REQUIRE(Iam(c, "DeleteRolePolicy", {{"RoleName", "web"}, {"PolicyName", "db"}}).status == 200);
    CHECK(Iam(c, "DeleteRole", {{"RoleName", "web"}}).status == 200);
  });
}

TEST_CASE("iam and sts: signature failures are worded for the query protocol", "[control][iam][sts]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    ct::CallOptions wrong_secret = Signed("iam");
    wrong_secret.secret = "not-the-secret";
    CheckError(Iam(c, "ListRoles", {}, wrong_secret), 403, "SignatureDoesNotMatch");
    ct::CallOptions unknown_key = Signed("iam");
    unknown_key.akid = "AKIANOTAKEY000000000";
    unknown_key.secret = "whatever";
    CheckError(Iam(c, "ListRoles", {}, unknown_key), 403, "InvalidClientTokenId");
    ct::CallOptions sts_wrong = Signed("sts");
    sts_wrong.secret = "not-the-secret";
    CheckError(c.Call("POST", "/", Form("GetCallerIdentity", "2011-06-15", {}), sts_wrong), 403, "SignatureDoesNotMatch",
               kStsXmlns);
  });
}

TEST_CASE("sts: GetCallerIdentity names the admin user and the account", "[control][sts]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    ct::Reply who = Sts(c, "GetCallerIdentity");
    INFO(who.body);
    REQUIRE(who.status == 200);
    CHECK(who.Header("content-type") == "text/xml");
    CHECK(Has(who.body, std::string("<GetCallerIdentityResponse xmlns=\"") + kStsXmlns + "\"><GetCallerIdentityResult>"));
    CHECK(Text(who.body, "Account") == "000000000000");
    CHECK(Text(who.body, "Arn") == "arn:aws:iam::000000000000:user/geysir-admin");
    CHECK(Text(who.body, "UserId") == "AIDA" + h.creds.akid.substr(4));
    CHECK(Text(who.body, "RequestId") == who.Header("x-amzn-requestid"));
    // Also as a GET with the parameters in the query string, as some SDKs send it.
    ct::Reply get = c.Call("GET", "/?Action=GetCallerIdentity&Version=2011-06-15", "", Signed("sts"));
    REQUIRE(get.status == 200);
    CHECK(Text(get.body, "Account") == "000000000000");
  });
}

TEST_CASE("sts: AssumeRole and other operations are not offered", "[control][sts]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    REQUIRE(Iam(c, "CreateRole", {{"RoleName", "web"}, {"AssumeRolePolicyDocument", kTrust}}).status == 200);
    ct::Reply assume =
        Sts(c, "AssumeRole", {{"RoleArn", "arn:aws:iam::000000000000:role/web"}, {"RoleSessionName", "s"}});
    CheckError(assume, 400, "InvalidAction", kStsXmlns);
    CHECK(Text(assume.body, "Message").rfind("Could not find operation AssumeRole for version 2011-06-15", 0) == 0);
  });
}

}  // namespace geysir::control
