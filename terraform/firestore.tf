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

  depends_on = [google_project_service.enabled]
}

# No composite index yet: the queries of shared/lessonstate are equality
# filters only (courseId == X and removed == false) and an unfiltered
# collection-group read of the `outbox` subcollections, which Firestore serves
# from its automatic indexes. A query that adds an order or a range on another
# field needs one here.
