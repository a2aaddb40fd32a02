// Command gitserver serves the bare repositories under a folder over git's smart HTTP
// protocol, clone, fetch and push, by running Git's own `git http-backend` as a CGI program:
// the team repository the GitOps tests and `make demo GITOPS=1` commit to, that Flux's
// source-controller clones and ciclo's write-back pushes to.
//
//	gitserver -listen 127.0.0.1:0 -root DIR [-credentials FILE] [-address-file FILE]
//
// With -credentials (a file holding `user:password`), every request must carry those in HTTP
// basic authentication; pushes are accepted only then (git http-backend enables
// receive-pack for an authenticated user). Each request is logged (method, path, status,
// user), never a password.
//
// A push's answer can be held back: while a repository NAME.git holds a file
// `hold-push-answer` (a number of seconds), a push to it is applied as usual and its answer
// sent only that much later. The tests use it to kill a client whose push landed before it
// learnt so.
package main

import (
	"bytes"
	"crypto/subtle"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxBody is the largest chunked request body read into memory (a push of that much).
const maxBody = 1 << 30

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0: any free one)")
	root := flag.String("root", "", "folder of bare repositories (NAME.git), served as /NAME.git")
	credentials := flag.String("credentials", "", "file holding user:password that every request must present")
	addressFile := flag.String("address-file", "", "file to write the address listened on to, once listening")
	flag.Parse()
	if *root == "" {
		log.Fatal("gitserver: -root is required")
	}
	backend, err := httpBackend()
	if err != nil {
		log.Fatalf("gitserver: %v", err)
	}
	user, password := "", ""
	if *credentials != "" {
		b, err := os.ReadFile(*credentials)
		if err != nil {
			log.Fatalf("gitserver: reading -credentials: %v", err)
		}
		var ok bool
		user, password, ok = strings.Cut(strings.TrimSpace(string(b)), ":")
		if !ok || user == "" {
			log.Fatalf("gitserver: -credentials %s must hold user:password", *credentials)
		}
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		log.Fatalf("gitserver: -root: %v", err)
	}
	git := &cgi.Handler{
		Path: backend,
		Root: "/",
		Env:  []string{"GIT_PROJECT_ROOT=" + absRoot, "GIT_HTTP_EXPORT_ALL=1"},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recorder := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		who := "-"
		defer func() {
			log.Printf("%s %s %d %s", r.Method, r.URL.Path, recorder.status, who)
		}()
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
				recorder.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(recorder, "authentication required", http.StatusUnauthorized)
				return
			}
			who = u
		}
		// git http-backend accepts pushes from an authenticated user, whom it reads from
		// REMOTE_USER (net/http/cgi does not set it).
		h := *git
		if who != "-" {
			h.Env = append([]string{"REMOTE_USER=" + who}, git.Env...)
		}
		// CGI has no chunked request bodies (net/http/cgi answers 400), and libgit2 sends
		// every push chunked: read the body first and pass its length.
		if r.ContentLength < 0 && r.Body != nil {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			if err != nil || len(body) > maxBody {
				http.Error(recorder, "request body unreadable or over 1 GiB", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.TransferEncoding = nil
		}
		if hold := heldFor(absRoot, r); hold > 0 {
			held := httptest.NewRecorder()
			h.ServeHTTP(held, r)
			log.Printf("%s %s answered %d; the answer held for %s", r.Method, r.URL.Path, held.Code, hold)
			time.Sleep(hold)
			for k, v := range held.Header() {
				recorder.Header()[k] = v
			}
			recorder.WriteHeader(held.Code)
			recorder.Write(held.Body.Bytes())
			return
		}
		h.ServeHTTP(recorder, r)
	})
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("gitserver: %v", err)
	}
	address := listener.Addr().String()
	if *addressFile != "" {
		if err := os.WriteFile(*addressFile, []byte(address+"\n"), 0o644); err != nil {
			log.Fatalf("gitserver: writing -address-file: %v", err)
		}
	}
	log.Printf("gitserver: serving %s on http://%s/", absRoot, address)
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
	log.Fatal(server.Serve(listener))
}

// heldFor is how long the answer to push r is held: the seconds in its repository's
// hold-push-answer file, if r is a push (git-receive-pack) and the file exists.
func heldFor(root string, r *http.Request) time.Duration {
	repo, ok := strings.CutSuffix(r.URL.Path, "/git-receive-pack")
	if !ok || r.Method != http.MethodPost {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(root, filepath.Clean("/"+repo), "hold-push-answer"))
	if err != nil {
		return 0
	}
	seconds, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || seconds <= 0 {
		return 0
	}
	return time.Duration(seconds) * time.Second
}

// httpBackend is the path of Git's git-http-backend program.
func httpBackend() (string, error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return "", fmt.Errorf("git --exec-path: %v (is git installed?)", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("git http-backend: %v", err)
	}
	return path, nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Flush lets git's streamed answers through as they come.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
