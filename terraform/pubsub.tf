#-- Topics --#

# The topic names of shared/events (DESIGN.md section 3): the contract
# between functions, Terraform and the workflow. Every one has a subscriber
# (terraform/tfcheck checks it): a message published to a topic without
# subscriptions is lost.
locals {
  topics = [
    local.topic_discovered, # detector, sweeper, replayer => downloader
    local.topic_downloaded, # sweeper, replayer => starter (re-drives; the raw bucket's finalize events start it first)
    local.topic_processed,  # workflow, detector (title-only change) => enricher
    local.topic_enriched,   # enricher => syncer
    local.topic_events,     # synced / failed / removed => notifier; removed => syncer
    local.topic_replay,     # operators => replayer
  ]

  # Push subscriptions the specs ask for, by name <topic>-<function>.
  spec_subscriptions = merge([
    for fn, f in local.functions : {
      for s in f.subscriptions : "${s.topic}-${fn}" => {
        function     = fn
        topic        = s.topic
        filter       = s.filter
        max_attempts = coalesce(s.max_attempts, var.max_delivery_attempts)
        dead_letter  = s.dead_letter
      }
    }
  ]...)

  # Dead-letter topic => the subscription it takes undeliverable messages
  # from. Named <subscription>-dlq, as the local stack names them
  # (local/stack Routes).
  dead_letter_topics = { for name, s in local.spec_subscriptions : "${name}-dlq" => name if s.dead_letter }

  # The notifier reads every other function's dead-letter topic, with no
  # dead-letter policy of its own.
  dead_letter_subscriptions = merge([
    for fn, f in local.functions : {
      for dlq, source in local.dead_letter_topics : "${dlq}-${fn}" => {
        function     = fn
        topic        = dlq
        filter       = null
        max_attempts = null
        dead_letter  = false
      } if local.spec_subscriptions[source].function != fn
    } if f.dead_letters
  ]...)

  # Every push subscription of ours.
  subscriptions = merge(local.spec_subscriptions, local.dead_letter_subscriptions)

  topic_ids = merge(
    { for name, t in google_pubsub_topic.topic : name => t.id },
    { for name, t in google_pubsub_topic.dead_letter : name => t.id },
  )
}

resource "google_pubsub_topic" "topic" {
  for_each = toset(local.topics)

  name   = each.value
  labels = var.labels

  depends_on = [terraform_data.apis_ready]
}

#-- Dead letters --#

# One dead-letter topic per subscription with a dead-letter policy. Pub/Sub's
# delivery limit sits well above the stages' MAX_ATTEMPTS, so a lesson fails
# by its stage's count with its reason, and a dead letter is an alarm: the
# notifier announces it and monitoring.tf alerts on it.
resource "google_pubsub_topic" "dead_letter" {
  for_each = local.dead_letter_topics

  name   = each.key
  labels = var.labels

  depends_on = [terraform_data.apis_ready]
}

# Every dead-letter topic also has <topic>-hold: a pull subscription that
# keeps each dead letter (the notifier's push only announces it) until an
# operator moves it back, once the fault is fixed, with
#   pipeline redrive <dead-letter topic>     (shared/redrive; docs/deploy.md)
# The local stack makes the same (local/eventarc). The end of the line: no
# dead-letter policy, no push.
resource "google_pubsub_subscription" "dead_letter_hold" {
  for_each = local.dead_letter_topics

  name                       = "${each.key}-hold"
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  message_retention_duration = var.dead_letter_retention
  labels                     = var.labels

  expiration_policy {
    ttl = "" # Never expires.
  }
}

#-- Push subscriptions --#

# The subscription an event_trigger makes cannot take a dead-letter policy, so
# each Pub/Sub-fed function is fed by subscriptions of ours: a push to the
# function's URL with an OIDC token of its trigger identity. The endpoint
# ends in /projects/P/topics/T, the path functions-framework-go reads the
# event's source from (without it every message logs a warning, and the
# notifier could not tell a dead letter's topic).
resource "google_pubsub_subscription" "push" {
  for_each = local.subscriptions

  name   = each.key
  topic  = local.topic_ids[each.value.topic]
  filter = each.value.filter
  labels = merge(var.labels, { function = each.value.function })

  # How long Pub/Sub waits for the function's answer (600 s at most).
  ack_deadline_seconds = min(local.functions[each.value.function].timeout, 600)
  # Dead letters wait for the notifier as long as dead_letter_retention.
  message_retention_duration = each.value.dead_letter ? null : var.dead_letter_retention

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function[each.value.function].service_config[0].uri}/projects/${var.project_id}/topics/${each.value.topic}"

    oidc_token {
      service_account_email = google_service_account.trigger[each.value.function].email
      audience              = google_cloudfunctions2_function.function[each.value.function].service_config[0].uri
    }
  }

  dynamic "dead_letter_policy" {
    for_each = each.value.dead_letter ? [each.key] : []
    content {
      dead_letter_topic     = google_pubsub_topic.dead_letter["${dead_letter_policy.value}-dlq"].id
      max_delivery_attempts = each.value.max_attempts
    }
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
    google_service_account_iam_member.pubsub_agent_token_creator,
  ]
}

# Dead-lettering needs the Pub/Sub service agent to publish to the dead-letter
# topic and to acknowledge on the source subscription.
# https://cloud.google.com/iam/docs/roles-permissions/pubsub#pubsub.publisher
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  for_each = local.dead_letter_topics

  topic  = google_pubsub_topic.dead_letter[each.key].id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

# https://cloud.google.com/iam/docs/roles-permissions/pubsub#pubsub.subscriber
resource "google_pubsub_subscription_iam_member" "pubsub_agent_subscriber" {
  for_each = { for name, s in local.spec_subscriptions : name => s if s.dead_letter }

  subscription = google_pubsub_subscription.push[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
