package vectorsync

import (
	"cmp"
	"context"
	"slices"
)

// inventory is everything of one lesson that exists at OpenAI: the files
// its school's store holds for it (found by their attributes) and the
// uploaded files named after it (found by name: an upload that crashed
// before it was attached or recorded has nothing else to be found by).
type inventory struct {
	attached []attachedFile
	uploaded []uploadedFile
}

type attachedFile struct {
	StoreFile
	version int
}

type uploadedFile struct {
	RemoteFile
	version int
}

// takeInventory lists the lesson's files. storeID may be empty (a removed
// lesson whose school never got a store): then only Files is listed.
func (s *Stage) takeInventory(ctx context.Context, storeID, lessonID string) (inventory, error) {
	var inv inventory
	if storeID != "" {
		sfs, err := s.OpenAI.StoreFiles(ctx, storeID)
		if err != nil {
			return inv, err
		}
		for _, sf := range sfs {
			if id, v, ok := lessonOf(sf); ok && id == lessonID {
				inv.attached = append(inv.attached, attachedFile{sf, v})
			}
		}
	}
	fs, err := s.OpenAI.Files(ctx, func(name string) bool {
		id, _, ok := ParseFileName(name)
		return ok && id == lessonID
	})
	if err != nil {
		return inv, err
	}
	for _, f := range fs {
		_, v, _ := ParseFileName(f.Filename)
		inv.uploaded = append(inv.uploaded, uploadedFile{f, v})
	}
	// Oldest first, so that of two equal candidates the same one is
	// chosen on every attempt.
	slices.SortStableFunc(inv.attached, func(a, b attachedFile) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.FileID, b.FileID))
	})
	slices.SortStableFunc(inv.uploaded, func(a, b uploadedFile) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return inv, nil
}

// candidate is the file an attempt goes on with for its version.
type candidate struct {
	fileID   string
	attached *StoreFile // nil: uploaded, not attached to the store
}

// choose picks, among what exists of version, the file to go on with, in
// this order: an attachment that completed, one still indexing, one that
// failed (the attempt then fails as that indexing did); else the file the
// stage record names (noted right after its upload); else the oldest upload
// of that name. Every other file of version is a duplicate, returned to be
// retired.
func (inv inventory) choose(version int, noted string) (candidate, []string) {
	var c candidate
	rank := func(status string) int {
		switch status {
		case StatusCompleted:
			return 0
		case StatusInProgress:
			return 1
		}
		return 2
	}
	best := -1
	for i, a := range inv.attached {
		if a.version != version {
			continue
		}
		if best < 0 || rank(a.Status) < rank(inv.attached[best].Status) {
			best = i
		}
	}
	if best >= 0 {
		sf := inv.attached[best].StoreFile
		c = candidate{fileID: sf.FileID, attached: &sf}
	} else {
		for _, u := range inv.uploaded {
			if u.version == version && u.ID == noted {
				c.fileID = u.ID
			}
		}
		if c.fileID == "" {
			for _, u := range inv.uploaded {
				if u.version == version {
					c.fileID = u.ID
					break
				}
			}
		}
	}
	var dups []string
	add := func(id string) {
		if id != c.fileID && !slices.Contains(dups, id) {
			dups = append(dups, id)
		}
	}
	for _, a := range inv.attached {
		if a.version == version {
			add(a.FileID)
		}
	}
	for _, u := range inv.uploaded {
		if u.version == version {
			add(u.ID)
		}
	}
	return c, dups
}

// upTo returns the ids of every file of the lesson at a version up to
// version, but keep: what a sync of version retires once its own file is
// indexed. Files of a later version belong to a later sync and are left.
// (An attachment naming the lesson without a readable version is not in
// the inventory at all: the stage did not make it.)
func (inv inventory) upTo(version int, keep string) []string {
	var ids []string
	add := func(id string, v int) {
		if v <= version && id != keep && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, a := range inv.attached {
		add(a.FileID, a.version)
	}
	for _, u := range inv.uploaded {
		add(u.ID, u.version)
	}
	return ids
}
