// The deploy pipeline behind CreateFunction and UpdateFunctionCode. A deploy is two-phase.
// Phase one runs on the service's deploy worker (base/loop_worker.h, one thread, so deploys
// unpack one after another): parse the JSON body, decode the base64 zip,
// CodeStore::Put (extract, verify, fsync, rename into code/<hex>). Phase two runs back on the
// loop thread: one store transaction points the function at the new code and changes its
// revision id, then the route table is pushed. So a function never points at code that is not
// completely on disk, and a refused zip leaves nothing behind (Put cleans its staging directory).
// Code given as Code.S3Bucket/S3Key is copied from S3 on the loop thread between the two.
#include "control/services/lambda/lambda_internal.h"

#include "control/zip_extract.h"
#include "base/log.h"
#include "control/aws_error.h"

namespace geysir::control::lambda {

using nlohmann::json;
using net::HttpRequest;
using net::HttpResponse;

void Lambda::StartDeploy(std::shared_ptr<Deploy> d) {
  if (!deploy_worker_) throw ApiException(ServiceError("deploy cancelled: control is shutting down"));
  d->self = this;
  d->started_ms = NowMs();
  deploys_.insert(d);
  deploys_in_flight_ = deploys_.size();
  std::weak_ptr<int> alive = alive_;
  deploy_worker_->Submit([d, alive]() -> LoopWorker::Continuation {
    DeployWork(*d);
    return [d, alive] {
      if (alive.lock()) d->self->DeployDone(d);
    };
  });
}

// The deploy worker's thread: touches only the Deploy and CodeStore::Put (under put_mu_).
void Lambda::DeployWork(Deploy& deploy) {
  Deploy* d = &deploy;
  try {
    if (!d->parsed) {
      d->parsed = true;
      json body = ParseJsonObject(d->body);
      std::string().swap(d->body);
      std::string* b64 = nullptr;
      bool from_s3 = false;
      if (d->create) {
        d->create_input = ParseCreateFunction(d->self->api_, body);
        b64 = &d->create_input.zip_base64;
        from_s3 = d->create_input.s3.has_value();
      } else {
        d->update_input = ParseUpdateFunctionCode(body);
        b64 = &d->update_input.zip_base64;
        from_s3 = d->update_input.s3.has_value();
        if (d->update_input.dry_run) return;
      }
      body = json();
      if (from_s3) {
        // S3's tables belong to the loop thread: DeployDone copies the object, then requeues.
        d->needs_s3 = true;
        return;
      }
      std::optional<std::string> decoded = Base64Decode(*b64);
      std::string().swap(*b64);
      if (!decoded) throw ApiException(InvalidParameterValue("Code.ZipFile is not valid base64"));
      d->zip = std::move(*decoded);
    }
    std::string* zip = &d->zip;
    if (zip->size() > ZipLimits{}.max_zip_bytes) {
      throw ApiException(RequestEntityTooLarge("Zipped size must be smaller than " +
                                               std::to_string(ZipLimits{}.max_zip_bytes) + " bytes (got " +
                                               std::to_string(zip->size()) + ")"));
    }
    std::lock_guard<std::mutex> lock(d->self->put_mu_);
    Result<StoredCode> stored = d->self->code_store_.Put(*zip);
    std::string().swap(d->zip);
    // The extractor words its refusals as Lambda does (control/zip_extract.h).
    ThrowIfError(stored.status());
    d->code = std::move(stored).value();
  } catch (const ApiException& e) {
    d->error = e.error();
  } catch (const std::exception& e) {
    d->error = ServiceError(std::string("deploy failed: ") + e.what());
  }
}

void Lambda::DeployDone(const std::shared_ptr<Deploy>& d) {
  Lambda* self = this;
  deploys_.erase(d);
  deploys_in_flight_ = deploys_.size();
  try {
    if (d->error) throw ApiException(*d->error);
    if (d->needs_s3) {
      // Copied now, synchronously: Zappa deletes the object as soon as this call returns.
      d->needs_s3 = false;
      const S3CodeSource& src = d->create ? *d->create_input.s3 : *d->update_input.s3;
      Result<std::string> object = self->objects_.ReadObject(src.bucket, src.key, ZipLimits{}.max_zip_bytes + 1);
      if (!object.ok()) {
        const Status& why = object.status();
        if (why.code() == Code::kResourceExhausted) {
          throw ApiException(RequestEntityTooLarge("Zipped size must be smaller than " +
                                                   std::to_string(ZipLimits{}.max_zip_bytes) + " bytes"));
        }
        if (why.code() != Code::kNotFound) ThrowIfError(why);
        // S3's error code (NoSuchBucket, NoSuchKey) and message, in Lambda's wording.
        const std::string code = why.aws_type().empty() ? "NoSuchKey" : why.aws_type();
        throw ApiException(InvalidParameterValue("Error occurred while GetObject. S3 Error Code: " + code +
                                                 ". S3 Error Message: " + why.message()));
      }
      d->zip = std::move(object).value();
      self->StartDeploy(d);
      return;
    }
    self->FinishDeploy(*d);
  } catch (const ApiException& e) {
    if (e.error().http_status >= 500) log::Error("deploy_failed", {{"message", e.error().message}});
    d->resp->Send(ToHttpResponse(e.error(), d->rid));
  } catch (const std::exception& e) {
    log::Error("deploy_exception", {{"what", e.what()}});
    d->resp->Send(ToHttpResponse(ServiceError(std::string("internal error: ") + e.what()), d->rid));
  }
}

void Lambda::FinishDeploy(Deploy& d) {
  if (d.create) {
    FunctionRecord f = std::move(d.create_input.record);
    f.code_sha256 = d.code.sha256_b64;
    f.code_hex = d.code.sha256_hex;
    f.code_size = static_cast<int64_t>(d.code.size);
    f.state = "Active";
    f.last_update_status = "Successful";
    Result<FunctionRecord> created = store_.CreateFunction(f);
    if (!created.ok()) {
      ForgetOrphanCode(d.code);
      if (created.status().code() == Code::kAlreadyExists) {
        throw ApiException(ResourceConflict("Function already exist: " + f.name));
      }
      ThrowIfError(created.status());
    }
    log::Info("function_created", {{"function", created->name},
                                   {"code_sha256", created->code_sha256},
                                   {"code_size", created->code_size},
                                   {"reused_code", d.code.reused},
                                   {"ms", NowMs() - d.started_ms}});
    json out = FunctionConfigurationJson(*created);
    // With Publish, Lambda answers with the unqualified ARN and the new version's number.
    if (d.create_input.publish) out["Version"] = PublishAfterDeploy(created->name).version;
    d.resp->Send(JsonReply(201, out, d.rid));
    return;
  }
  // UpdateFunctionCode
  bool precondition_failed = false;
  if (d.update_input.dry_run) {
    FunctionRecord f = GetOrThrow(d.name);
    if (d.update_input.revision_id && *d.update_input.revision_id != f.revision_id) precondition_failed = true;
    if (!precondition_failed) {
      d.resp->Send(JsonReply(200, FunctionConfigurationJson(f), d.rid));
      return;
    }
  }
  Result<FunctionRecord> updated = Status::Internal("not run");
  std::string replaced_revision;
  if (!precondition_failed) {
    updated = store_.UpdateFunction(d.name, [&](FunctionRecord& f) -> Status {
      if (d.update_input.revision_id && *d.update_input.revision_id != f.revision_id) {
        precondition_failed = true;
        return Status::Invalid("revision mismatch");
      }
      replaced_revision = f.revision_id;
      f.code_sha256 = d.code.sha256_b64;
      f.code_hex = d.code.sha256_hex;
      f.code_size = static_cast<int64_t>(d.code.size);
      f.last_update_status = "Successful";
      return Status::Ok();
    });
  }
  if (precondition_failed) {
    ForgetOrphanCode(d.code);
    throw ApiException(PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call the "
                                          "GetFunction/GetAlias API to retrieve the latest Revision Id"));
  }
  if (!updated.ok()) {
    ForgetOrphanCode(d.code);
    if (updated.status().code() == Code::kNotFound) {
      throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, d.name)));
    }
    ThrowIfError(updated.status());
  }
  log::Info("function_code_updated", {{"function", d.name},
                                      {"code_sha256", updated->code_sha256},
                                      {"revision_id", updated->revision_id},
                                      {"ms", NowMs() - d.started_ms}});
  if (!replaced_revision.empty() && replaced_revision != updated->revision_id) {
    scheduler_.Retire({d.name, replaced_revision});  // the old code's sandboxes stop now
  }
  if (HasUrl(d.name)) PushRoutes();
  // With Publish, the answer describes the new version (a ":N"-qualified FunctionArn).
  if (d.update_input.publish) {
    d.resp->Send(JsonReply(200, FunctionConfigurationJson(PublishAfterDeploy(d.name)), d.rid));
    return;
  }
  d.resp->Send(JsonReply(200, FunctionConfigurationJson(*updated), d.rid));
}

// Code unpacked for a deploy that then failed (name taken, revision mismatch) is removed unless
// something references it; while another deploy is unpacking we leave it (that deploy may be of
// the same zip), and a later restart's garbage collection takes it.
void Lambda::ForgetOrphanCode(const StoredCode& code) {
  if (code.sha256_hex.empty() || code.reused || deploys_in_flight_ > 0) return;
  Result<std::set<std::string>> referenced = store_.ReferencedCodeHexes();
  if (!referenced.ok() || referenced->count(code.sha256_hex)) return;
  Status st = code_store_.Remove(code.sha256_hex);
  if (!st.ok()) log::Warn("code_remove_failed", {{"hex", code.sha256_hex}, {"error", st.ToString()}});
}

}  // namespace geysir::control::lambda
