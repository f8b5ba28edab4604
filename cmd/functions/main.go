// Command functions serves the pipeline's Cloud Functions the way the Cloud
// Functions Go runtime does: functions-framework with every function
// registered. With FUNCTION_TARGET unset each function is served at
// /<EntryPoint>; with it set, the named one at /. The one-machine stack runs
// this binary.
//
// With FUNCTION_TIMEOUTS ("Downloader=30m,Starter=60s") the functions sit
// behind a local Cloud Run front (local/cloudrun) that cuts each request off
// at its function's timeout, as the platform does.
package main

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/coursekb/pipeline"
	"github.com/coursekb/pipeline/local/cloudrun"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "functions:", err)
		os.Exit(1)
	}
}

func run() error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	host := os.Getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	timeouts, err := cloudrun.ParseTimeouts(os.Getenv("FUNCTION_TIMEOUTS"))
	if err != nil {
		return err
	}
	if len(timeouts) == 0 {
		return funcframework.StartHostPort(host, port)
	}
	inner, err := freePort()
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- funcframework.StartHostPort("127.0.0.1", inner) }()
	backend := &url.URL{Scheme: "http", Host: "127.0.0.1:" + inner}
	srv := &http.Server{Addr: net.JoinHostPort(host, port), Handler: cloudrun.Front(backend, timeouts), ReadHeaderTimeout: 10 * time.Second}
	go func() { errc <- srv.ListenAndServe() }()
	return <-errc
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p, nil
}
