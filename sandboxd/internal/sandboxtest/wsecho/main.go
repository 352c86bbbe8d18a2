// Command wsecho is a test fixture: a static WebSocket (and plain HTTP) echo
// server that tests copy into a sandbox, since the busybox test image has no
// WebSocket server. It listens on 127.0.0.1 only, as dev servers often do.
// With -dir it serves a directory's files besides the echo at /ws, as a dev
// server serves a page, its assets and its HMR socket on one origin.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"

	"github.com/coder/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	dir := flag.String("dir", "", "serve the files of this directory (a dev server's pages and assets) instead of the hello line")
	flag.Parse()
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer func() { _ = c.CloseNow() }()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, msg); err != nil {
				return
			}
		}
	})
	if *dir != "" {
		http.Handle("/", http.FileServer(http.Dir(*dir)))
	} else {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from the sandbox: host=%s path=%s cookie=%q\n", r.Host, r.URL.Path, r.Header.Get("Cookie"))
		})
	}
	if err := http.ListenAndServe(*addr, nil); err != nil {
		fmt.Println(err)
	}
}
