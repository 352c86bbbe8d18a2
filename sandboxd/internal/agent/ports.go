package agent

import (
	"bufio"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mgx-ai/mgx/sandboxd/internal/agentapi"
)

func (s *Server) handlePorts(w http.ResponseWriter, _ *http.Request) {
	ports, err := s.listeningPorts()
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ports)
}

// listeningPorts reads the kernel's TCP tables of the agent's network
// namespace. Inside a container that namespace is the sandbox's own.
func (s *Server) listeningPorts() ([]agentapi.Port, error) {
	var owned map[string]bool
	if s.opts.OwnedPortsOnly {
		owned = ownedSocketInodes(os.Getpid())
	}
	seen := map[agentapi.Port]bool{}
	var ports []agentapi.Port
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, l := range parseListeners(file) {
			if owned != nil && !owned[l.inode] {
				continue
			}
			if !seen[l.Port] {
				seen[l.Port] = true
				ports = append(ports, l.Port)
			}
		}
	}
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].Port != ports[j].Port {
			return ports[i].Port < ports[j].Port
		}
		return ports[i].Address < ports[j].Address
	})
	return ports, nil
}

type listener struct {
	agentapi.Port
	inode string
}

// tcpListen is the st column value of a socket in LISTEN state.
const tcpListen = "0A"

// parseListeners parses /proc/net/tcp or tcp6: "sl local rem st ... inode".
func parseListeners(file string) []listener {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []listener
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpListen {
			continue
		}
		addr, port, ok := parseHexAddr(fields[1])
		if !ok {
			continue
		}
		out = append(out, listener{Port: agentapi.Port{Port: port, Address: addr}, inode: fields[9]})
	}
	return out
}

// parseHexAddr decodes "0100007F:0BB8": the address is stored as 32-bit
// words in host (little-endian) byte order, the port big-endian.
func parseHexAddr(s string) (string, int, bool) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return "", 0, false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return "", 0, false
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", 0, false
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return ip.String(), int(port), true
}

// ownedSocketInodes returns the socket inodes open in root's descendants.
func ownedSocketInodes(root int) map[string]bool {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name may contain spaces and parentheses; the fields
		// after the last ')' are fixed: state, ppid, ...
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid] = ppid
	}
	inodes := map[string]bool{}
	for pid := range parent {
		p, hops := pid, 0
		for p != root && p > 1 && hops < 64 {
			p, hops = parent[p], hops+1
		}
		if p != root || pid == root {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
			if err == nil && strings.HasPrefix(target, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
			}
		}
	}
	return inodes
}
