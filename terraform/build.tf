#-- Function source --#

# `make package` zips the module source (terraform/tfcheck/sourcezip: the
# packages the functions import, with fixed timestamps, so the same source
# makes the same archive) and Terraform uploads it here. The object is named
# by its content: new source redeploys every function, the same source none.
# Nothing has to exist before the apply: the bucket and the object are both
# made by it.
resource "google_storage_bucket_object" "source" {
  bucket       = google_storage_bucket.source.name
  name         = "source/${filesha256(var.source_archive)}.zip"
  source       = var.source_archive
  content_type = "application/zip"

  # The functions move to the new archive before the old one goes.
  lifecycle {
    create_before_destroy = true
  }
}

#-- Function images --#

# The images Cloud Build makes from the archive, one package per function.
# A repository of our own, so the build account writes to it alone (not to
# every repository of the project) and old images are cleaned up.
resource "google_artifact_registry_repository" "functions" {
  location      = var.region
  repository_id = "functions"
  description   = "Images of the pipeline's functions, built by Cloud Functions from the source archive."
  format        = "DOCKER"
  labels        = var.labels

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s" # 30 days, beyond the 5 kept above.
    }
  }

  depends_on = [terraform_data.apis_ready]
}

#-- Function build identity --#

# Cloud Build builds the functions as this account: not as the Compute
# Engine default account (the default for projects made since mid-2024),
# and without roles/cloudbuild.builds.builder, which at project level reads
# and writes every bucket of the project.
resource "google_service_account" "build" {
  account_id   = "function-build"
  display_name = "Function builds"
  description  = "Builds the functions' images from the source archive."

  depends_on = [terraform_data.apis_ready]
}

locals {
  # Project roles of the function build account (Cloud Functions, "custom
  # build service account": https://cloud.google.com/functions/docs/securing/build-custom-sa).
  build_roles = {
    # https://cloud.google.com/iam/docs/roles-permissions/logging#logging.logWriter — build logs.
    logs = { role = "roles/logging.logWriter", condition = null }
    # https://cloud.google.com/iam/docs/roles-permissions/storage#storage.objectViewer
    # Reads the source: our archive, and the copy Cloud Functions stages in
    # its own gcf-v2-sources-<number>-<region> bucket. Those two buckets only.
    sources = {
      role = "roles/storage.objectViewer"
      condition = {
        title      = "function sources only"
        expression = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.source.name}\") || resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}\")"
      }
    }
  }
}

resource "google_project_iam_member" "build" {
  for_each = local.build_roles

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.build.member

  dynamic "condition" {
    for_each = each.value.condition == null ? [] : [each.value.condition]
    content {
      title      = condition.value.title
      expression = condition.value.expression
    }
  }
}

# roles/artifactregistry.writer: https://cloud.google.com/iam/docs/roles-permissions/artifactregistry#artifactregistry.writer
# Why: the build pushes each function's image (and its build cache) to the
# functions repository, and to no other.
resource "google_artifact_registry_repository_iam_member" "build_writer" {
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

#-- Cloud Build deployer --#

# cloudbuild.yaml runs as this account (its `serviceAccount:`), never as the
# Compute Engine default account. It tests, plans and, with _APPLY=true,
# applies this configuration, so it manages what the configuration manages;
# what it does not get: roles/owner or roles/editor,
# roles/cloudbuild.builds.builder, any way to read a secret's value (its
# Secret Manager permissions are a custom role without
# secretmanager.versions.access: the versions' values are write-only, so the
# provider never reads them back), the lessons' data in Firestore (the same
# role manages the database and indexes only), or the objects of the raw and
# artifacts buckets (a condition, below). Its project IAM role is limited by
# a condition to the roles this configuration grants (modifiedGrantsByRole),
# so it cannot grant itself more. The first apply, which creates it and its
# roles, is run by a person (docs/deploy.md); a change to the deployer's own
# roles needs a person's apply again.
resource "google_service_account" "deployer" {
  account_id   = "pipeline-deployer"
  display_name = "Pipeline deployer (Cloud Build)"
  description  = "Runs cloudbuild.yaml: tests, terraform plan, and terraform apply when _APPLY=true."

  depends_on = [terraform_data.apis_ready]
}

locals {
  # Each role's page: https://cloud.google.com/iam/docs/roles-permissions/<service>#<role>
  deployer_roles = [
    "roles/logging.logWriter",               # Build logs (options.logging: CLOUD_LOGGING_ONLY).
    "roles/browser",                         # Reads the project (number) for data.google_project.
    "roles/serviceusage.serviceUsageAdmin",  # google_project_service.
    "roles/iam.serviceAccountAdmin",         # The functions', triggers', workflow's and build identities.
    "roles/iam.serviceAccountUser",          # Deploys functions, jobs, subscriptions and the workflow as them (actAs).
    "roles/cloudfunctions.developer",        # The functions.
    "roles/run.admin",                       # Invoker grants on the functions' Cloud Run services.
    "roles/eventarc.developer",              # The starter's storage trigger.
    "roles/artifactregistry.admin",          # The functions repository and its grant.
    "roles/storage.admin",                   # Buckets and their grants; objects of the source and state buckets only (condition below).
    "roles/pubsub.admin",                    # Topics, subscriptions and their grants.
    "roles/iam.roleViewer",                  # Reads its own custom role (below).
    "roles/workflows.editor",                # lesson-pipeline.
    "roles/cloudscheduler.admin",            # The detection and sweep jobs.
    "roles/logging.configWriter",            # Log-based metrics.
    "roles/monitoring.editor",               # Alert policies, notification channel, dashboard.
    "roles/resourcemanager.projectIamAdmin", # Project grants, limited by the condition below.
  ]

  # Every project role this configuration grants (to the functions, the
  # agents, the workflow and the build account): the deployer may grant
  # these and no others. terraform/tfcheck checks the list is complete.
  grantable_project_roles = sort(distinct(concat(
    ["roles/datastore.user", "roles/cloudtrace.agent", "roles/eventarc.eventReceiver", "roles/pubsub.publisher", "roles/logging.logWriter"],
    [for k, g in local.function_roles : g.role],
    [for k, b in local.build_roles : b.role],
  )))

  # Conditions narrowing two of the roles above.
  deployer_conditions = {
    "roles/resourcemanager.projectIamAdmin" = {
      title       = "pipeline roles only"
      description = "Grants and revokes only the roles this configuration grants."
      expression  = "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly(${jsonencode(local.grantable_project_roles)})"
    }
    # Everything but objects (buckets, their policies, the project), and the
    # objects of the source bucket (the archive it uploads) and of the state
    # bucket: never a lesson's video or artifacts.
    "roles/storage.admin" = {
      title       = "no lesson objects"
      description = "Buckets and their policies; objects of the source and state buckets only."
      expression = join(" || ", concat(
        ["resource.type != \"storage.googleapis.com/Object\""],
        ["resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.source.name}/\")"],
        var.state_bucket == "" ? [] : ["resource.name.startsWith(\"projects/_/buckets/${var.state_bucket}/\")"],
      ))
    }
  }
}

# Secret Manager and Firestore as the deployer needs them: the secrets, their
# versions (added, enabled, disabled; never read) and their grants; the
# database and its indexes, not the documents.
resource "google_project_iam_custom_role" "deployer" {
  role_id     = "pipelineDeployer"
  title       = "Pipeline deployer"
  description = "Manages the pipeline's secrets (never their values) and its Firestore database and indexes (never documents)."
  permissions = [
    "secretmanager.secrets.create",
    "secretmanager.secrets.delete",
    "secretmanager.secrets.get",
    "secretmanager.secrets.getIamPolicy",
    "secretmanager.secrets.list",
    "secretmanager.secrets.setIamPolicy",
    "secretmanager.secrets.update",
    "secretmanager.versions.add",
    "secretmanager.versions.destroy",
    "secretmanager.versions.disable",
    "secretmanager.versions.enable",
    "secretmanager.versions.get",
    "secretmanager.versions.list",
    "datastore.databases.create",
    "datastore.databases.get",
    "datastore.databases.getMetadata",
    "datastore.databases.list",
    "datastore.databases.update",
    "datastore.indexes.create",
    "datastore.indexes.delete",
    "datastore.indexes.get",
    "datastore.indexes.list",
    "datastore.indexes.update",
    "datastore.operations.get",
    "datastore.operations.list",
  ]

  depends_on = [terraform_data.apis_ready]
}

resource "google_project_iam_member" "deployer_custom" {
  project = var.project_id
  role    = google_project_iam_custom_role.deployer.name
  member  = google_service_account.deployer.member
}

resource "google_project_iam_member" "deployer" {
  for_each = toset(local.deployer_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.deployer.member

  dynamic "condition" {
    for_each = contains(keys(local.deployer_conditions), each.value) ? [local.deployer_conditions[each.value]] : []
    content {
      title       = condition.value.title
      description = condition.value.description
      expression  = condition.value.expression
    }
  }
}
