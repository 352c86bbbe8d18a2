package agent

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

// attachPorts fills in the TCP ports each running process's group listens on, so that a listing
// says which dev server holds which port. A process is found by its process group: every command
// starts as the leader of its own, and a dev server's workers (npm → node → esbuild) stay in it.
func attachPorts(list []agentapi.Process) {
	groups := map[int]int{} // pgid → index in list
	for i, p := range list {
		if p.State == agentapi.StateRunning && p.PID > 0 {
			groups[p.PID] = i
		}
	}
	if len(groups) == 0 {
		return
	}
	listening := map[string]int{} // socket inode → port
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, l := range parseListeners(file) {
			listening[l.inode] = l.Port.Port
		}
	}
	if len(listening) == 0 {
		return
	}
	entries, _ := os.ReadDir("/proc")
	found := map[int]map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		idx, ok := groups[processGroup(pid)]
		if !ok {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", e.Name(), "fd"))
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", e.Name(), "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			if port, ok := listening[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")]; ok {
				if found[idx] == nil {
					found[idx] = map[int]bool{}
				}
				found[idx][port] = true
			}
		}
	}
	for idx, ports := range found {
		for p := range ports {
			list[idx].Ports = append(list[idx].Ports, p)
		}
		sort.Ints(list[idx].Ports)
	}
}

// processGroup reads a process's group id from /proc/<pid>/stat, 0 when unknown.
func processGroup(pid int) int {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses; the fields after the last ')' are fixed:
	// state, ppid, pgrp, ...
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 3 {
		return 0
	}
	pg, _ := strconv.Atoi(f[2])
	return pg
}
