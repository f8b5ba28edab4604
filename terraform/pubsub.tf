#-- Topics --#

# The topic names of DESIGN.md section 3 (and shared/events): the contract
# between functions, Terraform and the workflow.
locals {
  topics = [
    "lesson-discovered", # detector => downloader
    "lesson-processed",  # workflow => enricher
    "lesson-enriched",   # enricher => syncer
    "lesson-events",     # synced / failed / removed => notifier
    "lesson-replay",     # operators => replay
  ]

  # Pub/Sub's service agent moves undeliverable messages to dead-letter topics.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "topic" {
  for_each = toset(local.topics)

  name   = each.value
  labels = var.labels

  depends_on = [google_project_service.enabled]
}

#-- Dead letters --#

# One dead-letter topic per push subscription. A message published to a topic
# without subscriptions is lost, so each dead-letter topic has a holding pull
# subscription until the notifier subscribes to it.
resource "google_pubsub_topic" "dead_letter" {
  for_each = local.pushed_functions

  name   = "${each.value.topic}-${each.key}-dead-letter"
  labels = var.labels

  depends_on = [google_project_service.enabled]
}

# The end of the line: no dead-letter policy of its own.
resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.pushed_functions

  name                       = "${google_pubsub_topic.dead_letter[each.key].name}-hold"
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  message_retention_duration = var.dead_letter_retention
  labels                     = var.labels

  expiration_policy {
    ttl = "" # Never expires.
  }
}

#-- Push subscriptions --#

# The subscription an event_trigger makes cannot take a dead-letter policy, so
# each Pub/Sub-fed function is fed by this one instead (DESIGN.md section 2).
resource "google_pubsub_subscription" "push" {
  for_each = local.pushed_functions

  name   = "${each.value.topic}-${each.key}"
  topic  = google_pubsub_topic.topic[each.value.topic].id
  labels = var.labels

  # How long Pub/Sub waits for the function's answer (600s at most).
  ack_deadline_seconds = min(each.value.timeout, 600)

  push_config {
    push_endpoint = google_cloudfunctions2_function.function[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.trigger[each.key].email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = var.retry_minimum_backoff
    maximum_backoff = var.retry_maximum_backoff
  }

  expiration_policy {
    ttl = "" # Never expires, however quiet the course is.
  }

  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter_publisher,
    google_cloud_run_v2_service_iam_member.trigger_invoker,
  ]
}

# Dead-lettering needs the Pub/Sub service agent to publish to the dead-letter
# topic and to acknowledge on the source subscription.
# https://cloud.google.com/iam/docs/roles-permissions/pubsub#pubsub.publisher
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  for_each = local.pushed_functions

  topic  = google_pubsub_topic.dead_letter[each.key].id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

# https://cloud.google.com/iam/docs/roles-permissions/pubsub#pubsub.subscriber
resource "google_pubsub_subscription_iam_member" "pubsub_agent_subscriber" {
  for_each = local.pushed_functions

  subscription = google_pubsub_subscription.push[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
