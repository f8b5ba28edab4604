#-- Project --#

variable "project_id" {
  description = "Google Cloud project that hosts the pipeline."
  type        = string
}

variable "region" {
  description = "Region of the functions, buckets, scheduler job and workflow. The raw bucket must be in the region of the Eventarc trigger that watches it."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region or a multi-region such as nam5). It cannot be changed after creation."
  type        = string
  default     = "nam5"
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

#-- Storage --#

variable "raw_retention_days" {
  description = "Days after which downloaded lesson videos (raw bucket, lessons/ prefix) are deleted. They can be downloaded again."
  type        = number
  default     = 30

  validation {
    condition     = var.raw_retention_days >= 1
    error_message = "raw_retention_days must be at least 1."
  }
}

#-- Functions --#

variable "source_object" {
  description = "Name of the function source archive in the source bucket, as uploaded by cloudbuild.yaml (source/<commit>.zip). A new name redeploys every function."
  type        = string
}

variable "log_level" {
  description = "LOG_LEVEL of every function: debug, info, warn or error."
  type        = string
  default     = "info"
}

#-- Detection --#

variable "detection_schedule" {
  description = "Cron schedule of the detector (Cloud Scheduler syntax)."
  type        = string
  default     = "0 */6 * * *"
}

variable "detection_time_zone" {
  description = "Time zone the detection schedule is read in."
  type        = string
  default     = "Etc/UTC"
}

variable "detection_budget" {
  description = "DETECTION_BUDGET: how long one detection run may take (a Go duration). Keep it below the detector's timeout."
  type        = string
  default     = "8m"
}

variable "hotmart_base_url" {
  description = "HOTMART_BASE_URL: https://developers.hotmart.com (production) or https://sandbox.hotmart.com (sandbox)."
  type        = string
  default     = "https://developers.hotmart.com"
}

variable "hotmart_token_url" {
  description = "HOTMART_TOKEN_URL: the Hotmart OAuth token endpoint."
  type        = string
  default     = "https://api-sec-vlc.hotmart.com/security/oauth/token"
}

variable "course_catalog" {
  description = "COURSE_CATALOG: Hotmart product id => its Club subdomain and school slug."
  type = map(object({
    subdomain = string
    school    = string
  }))
  default = {}
}

variable "media_manifest_uri" {
  description = "MEDIA_MANIFEST_URI: manifest mapping page ids to media URLs (gs:// or https://). Empty: no manifest."
  type        = string
  default     = ""
}

variable "media_ingest_prefix" {
  description = "MEDIA_INGEST_PREFIX: prefix of the raw bucket where the producer drops master files named by product/module/page."
  type        = string
  default     = "ingest"
}

#-- Download --#

variable "max_media_bytes" {
  description = "MAX_MEDIA_BYTES: the downloader refuses videos larger than this."
  type        = number
  default     = 21474836480
}

#-- Pub/Sub delivery --#

variable "max_delivery_attempts" {
  description = "Deliveries of one message before it goes to the subscription's dead-letter topic (Pub/Sub allows 5 to 100)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "retry_minimum_backoff" {
  description = "Shortest wait before Pub/Sub redelivers a nacked message."
  type        = string
  default     = "10s"
}

variable "retry_maximum_backoff" {
  description = "Longest wait before Pub/Sub redelivers a nacked message (at most 600s)."
  type        = string
  default     = "600s"
}

variable "dead_letter_retention" {
  description = "How long dead letters are kept in their holding subscriptions."
  type        = string
  default     = "604800s"
}
