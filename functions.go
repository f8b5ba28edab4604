// Package pipeline is the root of the source archive Cloud Functions builds:
// importing every function package registers each one's entry point with
// functions-framework, so one archive deploys every function, each selected
// by its entry point (FUNCTION_TARGET).
package pipeline

import (
	_ "github.com/coursekb/pipeline/functions/analyzer"
	_ "github.com/coursekb/pipeline/functions/detector"
	_ "github.com/coursekb/pipeline/functions/downloader"
	_ "github.com/coursekb/pipeline/functions/enricher"
	_ "github.com/coursekb/pipeline/functions/notifier"
	_ "github.com/coursekb/pipeline/functions/replayer"
	_ "github.com/coursekb/pipeline/functions/starter"
	_ "github.com/coursekb/pipeline/functions/sweeper"
	_ "github.com/coursekb/pipeline/functions/syncer"
	_ "github.com/coursekb/pipeline/functions/transcriber"
)
