package vectorsync

// Points an attempt passes, for the tests' crash hook.
const (
	PointUpload   = crashUpload
	PointUploaded = crashUploaded
	PointNoted    = crashNoted
	PointAttached = crashAttached
	PointIndexed  = crashIndexed
	PointRetired  = crashRetired
)

// ErrCrashed is what an attempt stopped by the hook returns.
var ErrCrashed = errCrashed

// OnPoint makes f run at every point an attempt passes; f returning true
// stops the attempt dead there, writing nothing more, as a process that
// dies there does. Set it only while no attempt runs.
func OnPoint(s *Stage, f func(point string) bool) { s.crash = f }
