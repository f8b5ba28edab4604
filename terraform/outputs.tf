#-- Outputs --#

output "function_urls" {
  description = "URL of each function (private: callers need an OIDC token and roles/run.invoker)."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.service_config[0].uri }
}

output "function_service_accounts" {
  description = "Runtime identity of each function."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "buckets" {
  description = "Bucket names: raw (videos, deleted after raw_retention_days), artifacts, source (function archives)."
  value = {
    raw       = google_storage_bucket.raw.name
    artifacts = google_storage_bucket.artifacts.name
    source    = google_storage_bucket.source.name
  }
}

output "topics" {
  description = "Pub/Sub topic ids by name."
  value       = { for name, t in google_pubsub_topic.topic : name => t.id }
}

output "dead_letter_subscriptions" {
  description = "Where each function's undeliverable messages wait, by function."
  value       = { for name, s in google_pubsub_subscription.dead_letter : name => s.id }
}

output "secret_ids" {
  description = "Secret Manager secrets whose values must be added out of band before the first deploy."
  value       = { for env, s in google_secret_manager_secret.secret : env => s.secret_id }
}

output "workflow_id" {
  description = "The lesson-pipeline workflow."
  value       = google_workflows_workflow.lesson_pipeline.id
}
