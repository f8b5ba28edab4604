#-- Firestore --#

# All lesson state (DESIGN.md section 3): courses, lessons, runs, taxonomy,
# schools. The functions use the (default) database.
resource "google_firestore_database" "default" {
  name        = "(default)"
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"

  # The database holds the only record of what was synced where: refuse to
  # delete it, and leave it in place on `terraform destroy`.
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [terraform_data.apis_ready]
}

#-- Indexes --#

# The enricher classifies a lesson by the nearest categories of its school
# (shared/taxonomy Classify): taxonomy where school == S, FindNearest on the
# vector field embedding (cosine). Firestore serves a vector query only from
# a composite index with the equality fields first and the vector field
# last, of the vectors' dimension (EMBEDDING_DIMENSIONS: the enricher's
# embedding space, functions.tf). Flat is the one vector index type. The API
# adds __name__ to every composite index; it is written here so the index
# read back matches this one. terraform/tfcheck checks the collection and
# field names against shared/taxonomy.
resource "google_firestore_index" "taxonomy_embedding" {
  database    = google_firestore_database.default.name
  collection  = "taxonomy"
  query_scope = "COLLECTION"

  fields {
    field_path = "school"
    order      = "ASCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "ASCENDING"
  }

  fields {
    field_path = "embedding"
    vector_config {
      dimension = var.embedding_dimensions
      flat {}
    }
  }
}

# No other composite index. The sweeper's query (lessons where nextCheckAt <=
# now, ordered by nextCheckAt: lessonstate.DueForSweep) is on one field,
# which Firestore indexes on its own (single-field indexes, ascending and
# descending, are automatic); so is runs ordered by startedAt. The other
# queries of shared/lessonstate and shared/enrich are equality filters
# (courseId, removed, lastRunId), ordered by document id at most, which
# Firestore serves by merging its automatic indexes, and an unfiltered
# collection-group read of the `outbox` subcollections. A query that adds an
# order or a range on another field needs an index here.
