"""The course's predictions: every "predict first" of a notebook that a run can grade, defined once.

Each names the experiment, the summary key the experiment's own rule grades, the values a learner
may draw (inside the experiment's ranges, and real-mode friendly: seconds, not minutes) and the
kernel source line that decides the answer (as the notebook cites it).

>>> sorted({q.notebook for q in QUESTIONS.values()})
['00', '01', '02', '03', '04', '05', '06', '07', '08', '09', '10', '11', '12', '13', '14', '15', '16', '18']
>>> for_notebook("03")[0].id
'03.somaxconn'
>>> question("03.nope")
Traceback (most recent call last):
ValueError: question must be one of 00.first, 01.syn_sent, 02.packets, 03.somaxconn, 03.java, 03.abort_on_overflow, 03.phantoms, 04.syn_recv, 04.three_quarters, 04.flood, 04.synack_retries, 05.syns_sent, 05.failed_after, 06.time_wait, 06.rst, 06.fd_after_rst, 07.ports, 07.tw_buckets, 07.rebind, 07.tw_reuse, 08.overflows, 09.queue, 09.backlog, 10.recv_q, 10.window_cap, 10.user_timeout, 10.rcvbuf_start, 11.fail, 11.rto, 11.rto_min, 11.user_timeout, 11.orphan, 11.spurious, 12.dead_peer, 12.user_timeout, 12.alive, 12.close_wait, 12.fd_limit, 13.stalls, 13.latency, 13.segments, 13.delack_wait, 14.repair, 14.timeouts, 15.bufferbloat, 15.slow_start, 15.cubic_exit, 15.bbr_rtt, 16.codel_rtt, 16.ecn_loss, 16.paced_rtt, 18.dupacks, not '03.nope'
"""

from __future__ import annotations

from tcplab.grading.question import Question

__all__ = ["QUESTIONS", "question", "for_notebook"]

_ALL = (
    # -- 00 welcome -----------------------------------------------------------------------------------------
    Question(
        "00.first", "00", "accept_queue",
        "A server calls listen({backlog}) and never calls accept(). {clients} clients connect. How many of them get a "
        "connection (ESTABLISHED)?",
        "established_clients",
        "include/net/sock.h sk_acceptq_is_full(): return READ_ONCE(sk->sk_ack_backlog) > "
        "READ_ONCE(sk->sk_max_ack_backlog);",
        "{observed}: one more than the backlog. Notebook 03 explains why.",
        vary={"backlog": [3, 4, 5, 6, 7]}, fixed={"clients": 20}, answer_range=(0, 20)),
    # -- 01 TCP states ----------------------------------------------------------------------------------
    Question(
        "01.syn_sent", "01", "accept_queue",
        "A listener with listen({backlog}) never accepts and {clients} clients connect. How many of the clients' "
        "sockets are in SYN_SENT?",
        "syn_sent_clients",
        "net/ipv4/tcp_input.c tcp_conn_request(): if (sk_acceptq_is_full(sk)) { NET_INC_STATS(sock_net(sk), "
        "LINUX_MIB_LISTENOVERFLOWS); goto drop; }",
        "{observed}: {established_clients} got in (backlog + 1); the SYNs of the others were dropped, so they stay "
        "SYN_SENT and retransmit.",
        vary={"backlog": [1, 2, 3, 4]}, fixed={"clients": 8}, answer_range=(0, 8)),
    # -- 02 the handshake ---------------------------------------------------------------------------------
    Question(
        "02.packets", "02", "handshake",
        "The client connects, sends 13 bytes, the server answers 13 bytes, and both close. How "
        "many TCP segments cross the loopback, from the SYN to the last ACK?",
        "packets",
        "net/ipv4/tcp_input.c __tcp_ack_snd_check(): an ACK goes at once only if more than one full segment is "
        "unacknowledged or in quickack mode, else tcp_send_delayed_ack(); a reply written in time carries the ACK "
        "(tcp_output.c tcp_transmit_skb() sets ACK on every segment after the SYN)",
        "{observed} segments: 3 for the handshake, each 13-byte write with its ACK, and each FIN with its ACK. "
        "Count them in the table below.",
        answer_range=(1, 100)),
    # -- 03 the accept queue --------------------------------------------------------------------------
    Question(
        "03.somaxconn", "03", "accept_queue",
        "listen({backlog}) but net.core.somaxconn = {somaxconn}; {clients} clients connect and the server never "
        "calls accept(). How many clients are ESTABLISHED 1.5 s later?",
        "established_clients",
        "net/socket.c __sys_listen_socket(): if ((unsigned int)backlog > somaxconn) backlog = somaxconn; and "
        "include/net/sock.h sk_acceptq_is_full(): sk_ack_backlog > sk_max_ack_backlog (>, not >=)",
        "min({backlog}, {somaxconn}) + 1 = {observed}: listen() clamps the backlog to somaxconn, and the queue is "
        "full only when it holds MORE than the limit. The others' SYNs were dropped (ListenOverflows "
        "{ListenOverflows}).",
        vary={"backlog": [3, 4, 5, 6, 8], "somaxconn": [2, 3, 4, 6]}, fixed={"clients": 20}, answer_range=(0, 20)),
    Question(
        "03.java", "03", "accept_queue",
        "A server calls listen({backlog}) and never accepts; {clients} clients connect. How many connect "
        "(ESTABLISHED)?",
        "established_clients",
        "include/net/sock.h sk_acceptq_is_full(): return READ_ONCE(sk->sk_ack_backlog) > "
        "READ_ONCE(sk->sk_max_ack_backlog);",
        "backlog + 1 = {observed}: the others are not refused (no RST); they stay SYN_SENT and retransmit their SYN.",
        vary={"backlog": [30, 40, 50, 60]}, fixed={"clients": 100}, answer_range=(0, 100)),
    Question(
        "03.abort_on_overflow", "03", "ack_overflow",
        "listen({backlog}) already holds {backlog} connections, tcp_syncookies=1, tcp_abort_on_overflow="
        "{abort_on_overflow}; a burst of {burst} clients connects over a slow loopback. How many clients get "
        "ECONNRESET?",
        "reset_clients",
        "net/ipv4/tcp_minisocks.c tcp_check_req(): if (!READ_ONCE(net->ipv4.sysctl_tcp_abort_on_overflow)) "
        "{ inet_rsk(req)->acked = 1; return NULL; } ... embryonic_reset: (a RST)",
        "{observed} reset (EmbryonicRsts {EmbryonicRsts}): with 1 every request whose ACK overflows gets a RST, with 0 "
        "the ACK is dropped and the request waits; a cookie connection is never reset (tcp_get_cookie_sock()).",
        vary={"abort_on_overflow": [False, True], "burst": [5, 6, 7]}, fixed={"backlog": 4, "syncookies": 1},
        answer_range=(0, 12)),
    Question(
        "03.phantoms", "03", "accept_queue",
        "listen({backlog}), {clients} clients, and the server starts accepting (drains its queue every 50 ms) "
        "{accept_after} s after the first connect. 1.5 s after the connects, how many connections has the server "
        "accepted?",
        "accepted",
        "net/ipv4/tcp_ipv4.c tcp_v4_syn_recv_sock(): if (sk_acceptq_is_full(sk)) goto exit_overflow; (the final "
        "ACK of a cookie connection that finds the queue full is dropped: the client is ESTABLISHED, the server "
        "has nothing)",
        "{observed} = 2 x (backlog + 1): the first backlog + 1, then as many of the SYNs retransmitted at 1 s; the "
        "others' ACKs found the queue full again: {phantom_clients} clients ESTABLISHED with no server socket.",
        vary={"backlog": [3, 4, 5, 6, 8], "accept_after": [0.3, 0.5]}, fixed={"clients": 20}, answer_range=(0, 20)),
    # -- 04 the SYN queue ------------------------------------------------------------------------------
    Question(
        "04.syn_recv", "04", "syn_queue",
        "listen({backlog}), tcp_syncookies=1, tcp_max_syn_backlog={max_syn_backlog}; {clients} clients connect and "
        "never send their data (TCP_DEFER_ACCEPT). How many requests sit in SYN_RECV?",
        "syn_recv",
        "include/net/inet_connection_sock.h inet_csk_reqsk_queue_is_full(): return "
        "inet_csk_reqsk_queue_len(sk) > READ_ONCE(sk->sk_max_ack_backlog); (>= before v6.13)",
        "{observed}: the SYN queue is full when it holds more than the backlog; the other SYNs got cookies "
        "(SyncookiesSent {SyncookiesSent}). tcp_max_syn_backlog plays no part with cookies on.",
        vary={"backlog": [2, 4, 6, 8, 10], "max_syn_backlog": [16, 128]}, fixed={"syncookies": 1, "clients": 30},
        answer_range=(0, 30)),
    Question(
        "04.three_quarters", "04", "syn_queue",
        "Cookies off, listen(100), tcp_max_syn_backlog={max_syn_backlog}, {clients} clients. How many requests sit in "
        "SYN_RECV?",
        "syn_recv",
        "net/ipv4/tcp_input.c tcp_conn_request(): if (!syncookies && (max_syn_backlog - "
        "inet_csk_reqsk_queue_len(sk) < (max_syn_backlog >> 2)) && !tcp_peer_is_proven(...)) goto drop_and_release;",
        "{observed} = 3/4 x {max_syn_backlog} + 1: tcp_max_syn_backlog is a rule for unproven peers, not a queue size.",
        vary={"max_syn_backlog": [8, 16, 32, 40]}, fixed={"backlog": 100, "syncookies": 0, "clients": 60},
        answer_range=(0, 60)),
    Question(
        "04.flood", "04", "syn_queue",
        "{clients} spoofed SYNs whose SYN-ACKs go nowhere fill the SYN queue of listen({backlog}) "
        "(tcp_max_syn_backlog={max_syn_backlog}); then a normal client tries to connect for 3.5 s, with "
        "tcp_syncookies={syncookies}. Does it get in?",
        "legit_client_connected",
        "net/ipv4/tcp_input.c tcp_conn_request(): if ((syncookies == 2 || inet_csk_reqsk_queue_is_full(sk)) && "
        "!isn) { want_cookie = tcp_syn_flood_action(sk, rsk_ops->slab_name); if (!want_cookie) goto drop; }",
        "{observed}: with cookies a full SYN queue answers with a cookie and keeps no state, so the client gets in; "
        "without, its SYNs are dropped while the flood's requests wait out their SYN-ACK retries.",
        vary={"syncookies": [0, 1]}, fixed={"backlog": 128, "max_syn_backlog": 8, "clients": 200, "flood": True},
        choices={"gets in (ESTABLISHED)": True, "does not get in": False}),
    Question(
        "04.synack_retries", "04", "syn_queue",
        "{clients} spoofed SYNs fill the SYN queue of listen({backlog}) (tcp_syncookies=1); their SYN-ACKs are "
        "resent at 1, 3, 7, 15 s and never answered; tcp_synack_retries={synack_retries}. How many requests are "
        "still in SYN_RECV after 9 s?",
        "syn_recv",
        "net/ipv4/inet_connection_sock.c reqsk_timer_handler(): if ((qlen << 1) > max(8U, "
        "READ_ONCE(sk_listener->sk_max_ack_backlog))) { int young = reqsk_queue_len_young(queue) << 1; while "
        "(max_syn_ack_retries > 2) { if (qlen < young) break; max_syn_ack_retries--; young <<= 1; } }",
        "{observed}: while the queue is more than half full, requests that already timed out are dropped at their "
        "2nd timeout (7 s) until it is half full again; the rest keeps tcp_synack_retries (with 2 or fewer, all go "
        "by 7 s).",
        vary={"backlog": [64, 128], "synack_retries": [2, 5]},
        fixed={"clients": 200, "syncookies": 1, "flood": True, "settle": 9.0}, answer_range=(0, 200)),
    # -- 05 SYN retries ------------------------------------------------------------------------------------
    Question(
        "05.syns_sent", "05", "syn_retries",
        "TCP_SYNCNT={retries}, every SYN is dropped. How many SYNs does the client send in all (the first "
        "included) before connect() fails?",
        "syns_sent",
        "net/ipv4/tcp_timer.c tcp_write_timeout(): gives up when icsk_retransmits >= retries + "
        "tcp_syn_linear_timeouts (6.5+) or the time since the first SYN reached ((2 << retries) - 1) s "
        "(retransmits_timed_out())",
        "{observed} SYNs, at 0 s and {retransmit_times}: the timer gives up only when it fires, after "
        "{failed_after} s.",
        vary={"retries": [1, 2]}, answer_range=(1, 50)),
    Question(
        "05.failed_after", "05", "syn_retries",
        "TCP_SYNCNT={retries}, every SYN is dropped. After how many seconds does connect() fail with ETIMEDOUT?",
        "failed_after",
        "net/ipv4/tcp_timer.c retransmits_timed_out(): timeout = tcp_model_timeout(sk, boundary, TCP_TIMEOUT_INIT), "
        "((2 << boundary) - 1) * 1 s, checked when the RTO timer fires",
        "{observed} s: (2 << {retries}) - 1 s is when the kernel may give up; it does at the next timer expiry.",
        vary={"retries": [1, 2]}, answer_range=(0, 600), unit="s"),
    # -- 06 closing ---------------------------------------------------------------------------------------
    Question(
        "06.time_wait", "06", "lifecycle",
        "Scenario {scenario}: one end calls close() first, the other closes after it has read the FIN. Which end "
        "ends up in TIME_WAIT?",
        "time_wait_end",
        "net/ipv4/tcp_input.c tcp_fin(): case TCP_FIN_WAIT2: /* Received a FIN -- send ACK and enter TIME-WAIT. */ "
        "tcp_send_ack(sk); tcp_time_wait(sk, TCP_TIME_WAIT, 0);",
        "{observed}: the end that closes first takes the other's FIN in FIN_WAIT2 and waits in TIME_WAIT; the "
        "other goes CLOSE_WAIT, LAST_ACK, CLOSE (client {client_states}, server {server_states}).",
        vary={"scenario": ["client_closes_first", "server_closes_first"]},
        choices={"the client": "client", "the server": "server", "both": "both", "neither": None}),
    Question(
        "06.rst", "06", "lifecycle",
        "Scenario {scenario}: the client closes first (abortive_close: with SO_LINGER {{on=1, linger=0}}, "
        "client_closes_first: a plain close()). What does the server's next recv() get?",
        "server_error",
        "net/ipv4/tcp.c __tcp_close(): } else if (sock_flag(sk, SOCK_LINGER) && !sk->sk_lingertime) { "
        "sk->sk_prot->disconnect(sk, 0); (a RST, no FIN); the peer's tcp_reset() sets sk_err = ECONNRESET",
        "{observed}: a zero linger sends a RST instead of a FIN, and nobody ends in TIME_WAIT; a plain close() sends a "
        "FIN, which recv() reads as end of file (0 bytes).",
        vary={"scenario": ["abortive_close", "client_closes_first"]},
        choices={"ECONNRESET": "ECONNRESET", "no error: recv() returns 0 (end of file)": None}),
    Question(
        "06.fd_after_rst", "06", "keepalive",
        "A server never calls close(); its socket sits in CLOSE_WAIT with SO_KEEPALIVE (TCP_KEEPIDLE={idle}) and the "
        "client's host has forgotten the connection, so the probe draws a RST. Afterwards, is the program's file "
        "descriptor for that socket still open?",
        "fd_open_at_end",
        "net/ipv4/tcp_input.c tcp_reset(): tcp_write_queue_purge(sk); tcp_done(sk); (the connection goes to CLOSE and "
        "leaves the tables; the file descriptor is the application's, freed only by close())",
        "{observed}: the kernel ended the connection ({end_state}; ss lists it: {listed_at_end}) and reported "
        "{error}, but only close() frees the descriptor: a leak of descriptors outlives the connections.",
        vary={"idle": [1, 2]}, fixed={"interval": 1, "count": 2, "peer": "close_wait_rst"},
        choices={"open (only close() frees it)": True, "closed by the kernel": False}),
    # -- 07 TIME_WAIT --------------------------------------------------------------------------------------
    Question(
        "07.ports", "07", "time_wait",
        "The client closes first, one connect every 10 ms, tcp_tw_reuse=0, the port range is {port_range}. "
        "{connections} connections are wanted within 1.5 s: how many succeed?",
        "connections_made",
        "net/ipv4/tcp_ipv4.c tcp_twsk_unique(): if (ts_recent_stamp && (!twp || (reuse && "
        "time_after32(tcp_clock_ms(), reuse_thresh)))) (with tcp_tw_reuse=0 a TIME_WAIT port is never taken over)",
        "{observed}: one per port; each port is then held by a TIME_WAIT socket for 60 s and the next connect() "
        "fails with {error}.",
        vary={"port_range": [(40000, 40005), (40000, 40007), (40000, 40009), (40000, 40011)]},
        fixed={"connections": 20, "tw_reuse": 0, "duration": 1.5}, answer_range=(0, 20)),
    Question(
        "07.tw_buckets", "07", "time_wait",
        "tcp_tw_reuse=0, 10 ports (40000-40009), tcp_max_tw_buckets={max_tw_buckets}; {connections} connections "
        "in 3 s. How many sockets are in TIME_WAIT at the end?",
        "time_wait",
        "net/ipv4/inet_timewait_sock.c inet_twsk_alloc(): if (refcount_read(&dr->tw_refcount) - 1 >= "
        "READ_ONCE(dr->sysctl_max_tw_buckets)) return NULL;",
        "{observed}: the cap. Every other socket closed without TIME_WAIT (TCPTimeWaitOverflow), so all "
        "{connections_made} connections worked.",
        vary={"max_tw_buckets": [2, 3, 4, 5, 6]},
        fixed={"connections": 100, "port_range": (40000, 40009), "tw_reuse": 0, "duration": 3.0},
        answer_range=(0, 100)),
    Question(
        "07.rebind", "07", "rebind",
        "A server closed its connections first (TIME_WAIT on its port), exits and restarts. SO_REUSEADDR on the "
        "old listener: {old_reuseaddr}; on the new one: {new_reuseaddr}. Does the new bind() succeed?",
        "bound",
        "net/ipv4/inet_connection_sock.c inet_bind_conflict(): if (sk->sk_reuse && sk2->sk_reuse && "
        "sk2->sk_state != TCP_LISTEN) (no conflict; anything else conflicts)",
        "The TIME_WAIT socket keeps the OLD socket's sk_reuse: only both set bind.",
        vary={"old_reuseaddr": [False, True], "new_reuseaddr": [False, True]},
        choices={"binds": True, "fails (EADDRINUSE)": False}),
    Question(
        "07.tw_reuse", "07", "time_wait",
        "The client closes first, one connect every 10 ms, 10 ports (40000-40009), tcp_tw_reuse=1, TCP timestamps "
        "{timestamps}. {connections} connections are wanted within 1.5 s: how many succeed?",
        "connections_made",
        "net/ipv4/tcp_ipv4.c tcp_twsk_unique(): if (ts_recent_stamp && (!twp || (reuse && "
        "time_after32(tcp_clock_ms(), reuse_thresh)))) (a TIME_WAIT port is taken over only if it saw a timestamp, "
        "and tcp_tw_reuse_delay, 1 s, after it)",
        "{observed} ({reused_ports} ports reused, TWRecycled {TWRecycled}): with timestamps each port is taken over "
        "about 1 s after its TIME_WAIT began; without them never.",
        vary={"timestamps": [True, False], "connections": [12, 16, 20]},
        fixed={"port_range": (40000, 40009), "tw_reuse": 1, "duration": 1.5}, answer_range=(0, 20)),
    # -- 13 Nagle and delayed ACK ---------------------------------------------------------------------------
    Question(
        "13.stalls", "13", "nagle",
        "{requests} requests, each two write()s of 100 B then a read of the 100 B reply, Nagle on, no "
        "TCP_QUICKACK. How many requests wait for a delayed ACK (take 20 ms or more)?",
        "stalled_requests",
        "net/ipv4/tcp_output.c tcp_nagle_check(): return partial && ((nonagle & TCP_NAGLE_CORK) || (!nonagle && "
        "tp->packets_out && tcp_minshall_check(tp)));",
        "{observed}: every request but the first; the server delays its ACK once it is interactive (after its "
        "first reply), and Nagle holds the second write until that ACK.",
        vary={"requests": [5, 8, 10, 12, 15]}, fixed={"request_writes": 2}, answer_range=(0, 15)),
    Question(
        "13.latency", "13", "nagle",
        "{requests} requests, each two write()s of 100 B then a read, on loopback (a round trip ~0.05 ms). "
        "What is the median time per request, in ms?",
        "median_latency_s",
        "include/net/tcp.h #define TCP_DELACK_MIN ((unsigned)(HZ/25)) (40 ms), armed by tcp_send_delayed_ack() "
        "in net/ipv4/tcp_output.c; the timer wheel adds a tick (kernel/time/timer.c calc_index())",
        "{observed} ms: a delayed ACK's 40 ms plus a timer tick, not a round trip.",
        vary={"requests": [10, 15, 20]}, fixed={"request_writes": 2}, answer_range=(0, 1000), unit="ms",
        scale=0.001),
    Question(
        "13.segments", "13", "nagle",
        "TCP_NODELAY on; {requests} requests of {request_writes} write(s) of 100 B each. How many data segments "
        "does the client send?",
        "segments",
        "net/ipv4/tcp.c do_tcp_setsockopt() TCP_NODELAY: tp->nonagle |= TCP_NAGLE_OFF|TCP_NAGLE_PUSH; then "
        "tcp_nagle_check() never holds a partial segment",
        "{observed}: with Nagle off each write() leaves at once as its own segment.",
        vary={"requests": [5, 10, 20], "request_writes": [1, 2, 3]}, fixed={"nodelay": True},
        answer_range=(0, 100)),
    Question(
        "13.delack_wait", "13", "delayed_ack",
        "One 100-byte segment at a time to a receiver that does not reply or read, over a {rtt_ms} ms path. How "
        "long (ms) does a delayed ACK wait once the waits have settled (the fifth on)?",
        "settled_wait_ms",
        "net/ipv4/tcp_output.c tcp_send_delayed_ack(): int rtt = max_t(int, usecs_to_jiffies(tp->srtt_us >> 3), "
        "TCP_DELACK_MIN); if (rtt < max_ato) max_ato = rtt; ... ato = min(ato, max_ato);",
        "{observed} ms: ato doubles each time the timer fires, up to min(SRTT, 200 ms) (TCP_DELACK_MAX), plus a "
        "timer tick; the waits were {waits_ms} ms.",
        vary={"rtt_ms": [100.0, 150.0, 250.0]}, fixed={"messages": 6}, answer_range=(0, 2000), unit="ms"),
    # -- 08 diagnosing ------------------------------------------------------------------------------------
    Question(
        "08.overflows", "08", "accept_queue",
        "An incident: listen({backlog}) that never accepts, {clients} clients, a snapshot after {settle} s. By how "
        "much does the ListenOverflows counter (netstat -s: \"times the listen queue of a socket overflowed\") grow?",
        "ListenOverflows",
        "net/ipv4/tcp_input.c tcp_conn_request(): if (sk_acceptq_is_full(sk)) { NET_INC_STATS(sock_net(sk), "
        "LINUX_MIB_LISTENOVERFLOWS); goto drop; }",
        "{observed}: one per dropped SYN, clients - (backlog + 1); the first retransmissions come after 1 s, after the "
        "snapshot. ListenDrops ({ListenDrops}) counts the same drops.",
        vary={"backlog": [2, 3, 4, 5]}, fixed={"clients": 12, "settle": 0.5}, answer_range=(0, 100)),
    # -- 09 tuning lab ----------------------------------------------------------------------------------
    Question(
        "09.queue", "09", "load",
        "200 clients/s for 5 s, accept() 150/s, listen({backlog}). How full does the accept queue get at most "
        "(sampled every 50 ms)?",
        "max_recv_q",
        "include/net/sock.h sk_acceptq_is_full(): return READ_ONCE(sk->sk_ack_backlog) > "
        "READ_ONCE(sk->sk_max_ack_backlog);",
        "{observed}: the queue fills to backlog + 1 and stays there; the clients that do not fit are dropped "
        "(ListenOverflows {ListenOverflows}) and retry their SYN.",
        vary={"backlog": [8, 16, 32]}, fixed={"rate": 200, "accept_rate": 150, "duration": 5},
        answer_range=(0, 10_000)),
    Question(
        "09.backlog", "09", "load",
        "200 clients/s for 5 s, accept() 150/s, listen({backlog}). What is the 99th percentile of connect() time, "
        "in seconds?",
        "p99_connect_s",
        "net/ipv4/tcp_input.c tcp_conn_request(): if (sk_acceptq_is_full(sk)) { NET_INC_STATS(sock_net(sk), "
        "LINUX_MIB_LISTENOVERFLOWS); goto drop; } (the client's SYN is resent after 1 s, then 3 s)",
        "{observed} s: the queue grows by 50 a second; a backlog it reaches within 5 s drops SYNs "
        "(ListenOverflows {ListenOverflows}) and those clients wait for their SYN retransmit (1 s, 3 s); a larger "
        "one drops nothing, and connect() returns at once while the queue, {max_recv_q} at most, keeps growing.",
        vary={"backlog": [64, 128, 256, 1024]}, fixed={"rate": 200, "accept_rate": 150, "duration": 5},
        answer_range=(0, 10), unit="s"),
    # -- 10 flow control ----------------------------------------------------------------------------------
    Question(
        "10.recv_q", "10", "flow_control",
        "The receiver sets SO_RCVBUF={rcvbuf} and does not read for 2 s; the sender writes 200 000 bytes. How many "
        "bytes sit in the receiver's Recv-Q (received, not yet read) at most?",
        "max_recv_q",
        "net/core/sock.c __sock_set_rcvbuf(): WRITE_ONCE(sk->sk_rcvbuf, max_t(int, val * 2, SOCK_MIN_RCVBUF)); "
        "(the kernel doubles SO_RCVBUF for its overhead and offers part of it as the window)",
        "{observed} bytes; the rest of the write waits in the sender's Send-Q (up to {max_send_q} bytes) and the "
        "sender probes the zero window ({probes} probes).",
        vary={"rcvbuf": [4096, 8192, 16384]}, fixed={"bytes": 200_000, "reader": "stalled", "stall_s": 2.0},
        answer_range=(0, 1_000_000)),
    Question(
        "10.window_cap", "10", "window",
        "tcp_window_scaling=0 at both ends, so the window is at most 65535 bytes; a {rtt_ms} ms round trip and a "
        "{rate_mbit} Mbit/s link for {seconds} s. What throughput (Mbit/s) does the transfer get?",
        "throughput_mbit",
        "net/ipv4/tcp_output.c tcp_syn_options(): if (likely(READ_ONCE(sock_net(sk)->ipv4.sysctl_tcp_window_scaling))) "
        "{ opts->ws = tp->rx_opt.rcv_wscale; ... } (no option on the SYN: the 16-bit window field is the whole window)",
        "{observed} Mbit/s: at most 65535 x 8 / RTT ({window_cap_mbit} Mbit/s) whatever the link; one window per "
        "round trip.",
        vary={"rtt_ms": [40, 60, 80]}, fixed={"rcvbuf": None, "window_scaling": False, "rate_mbit": 20, "seconds": 3},
        answer_range=(0, 1000), unit="Mbit/s"),
    Question(
        "10.user_timeout", "10", "flow_control",
        "The receiver (SO_RCVBUF=4096) stalls 3 s and answers every zero-window probe; the sender sets "
        "TCP_USER_TIMEOUT={user_timeout} ms. After how many seconds does the sender give up?",
        "aborted_after_s",
        "net/ipv4/tcp_timer.c tcp_probe_timer(): if (user_timeout && (s32)(tcp_jiffies32 - icsk->icsk_probes_tstamp) "
        ">= msecs_to_jiffies(user_timeout)) goto abort; (answered or not; checked when a probe timer fires)",
        "{observed} s ({error}, after {probes} probes): the user timeout counts from the first probe's expiry and is "
        "checked when the probe timer fires, so the abort comes at the first probe past it.",
        vary={"user_timeout": [1000, 2000]}, fixed={"rcvbuf": 4096, "bytes": 200_000, "stall_s": 3.0},
        answer_range=(0, 60), unit="s"),
    Question(
        "10.rcvbuf_start", "10", "autotuning",
        "A receiver sets SO_RCVBUF={rcvbuf} before a 20 MB transfer on loopback. What does getsockopt(SO_RCVBUF) "
        "return right after?",
        "rcvbuf_at_start",
        "net/core/sock.c __sock_set_rcvbuf(): sk->sk_userlocks |= SOCK_RCVBUF_LOCK; WRITE_ONCE(sk->sk_rcvbuf, "
        "max_t(int, val * 2, SOCK_MIN_RCVBUF));",
        "{observed} bytes: the kernel doubles the value for its own overhead, and the lock keeps autotuning away "
        "(at most {rcvbuf_max} during the transfer).",
        vary={"rcvbuf": [4096, 16384, 32768]}, fixed={"bytes": 20_000_000}, answer_range=(0, 10_000_000)),
    # -- 11 retransmission --------------------------------------------------------------------------------
    Question(
        "11.fail", "11", "retransmission",
        "The peer goes silent after the handshake; the client writes 100 bytes with tcp_retries2={retries2}. After "
        "how many seconds does the socket fail? (The RTO on loopback starts at about 0.2 s.)",
        "failed_after_s",
        "net/ipv4/tcp_timer.c tcp_retransmit_timer(): icsk->icsk_rto = min(icsk->icsk_rto << 1, TCP_RTO_MAX); and "
        "tcp_write_timeout(): retransmits_timed_out(sk, READ_ONCE(net->ipv4.sysctl_tcp_retries2), 0)",
        "{observed} s after {TCPTimeouts} RTO expiries: the limit is a time, computed from tcp_retries2 as if the "
        "RTO had doubled from 200 ms, and checked when the timer fires.",
        vary={"retries2": [2, 3]}, answer_range=(0, 600), unit="s"),
    Question(
        "11.rto", "11", "rtt_rto",
        "A path with a {rtt_ms} ms round trip; the sender's smoothed RTT settles at about {rtt_ms} ms. What RTO (ms) "
        "does tcp_info show? (A jiffy is 4 ms here.)",
        "rto_before_ms",
        "net/ipv4/tcp_input.c __tcp_set_rto(): return usecs_to_jiffies((tp->srtt_us >> 3) + tp->rttvar_us); with "
        "rttvar_us never below tcp_rto_min_us(sk) (tcp_rtt_estimator())",
        "{observed} ms: srtt plus a variance term floored at 200 ms, rounded up to a jiffy.",
        vary={"rtt_ms": [20, 40, 60, 80]}, fixed={"seconds": 3}, answer_range=(0, 5000), unit="ms"),
    Question(
        "11.rto_min", "11", "rtt_rto",
        "A 40 ms path; the route's rto_min is {rto_min_ms} ms (RTAX_RTO_MIN, converted with msecs_to_jiffies(), a "
        "jiffy is 4 ms). What RTO (ms) does tcp_info show once the smoothed RTT has settled?",
        "rto_before_ms",
        "include/net/tcp.h tcp_rto_min(): u32 rto_min = inet_csk(sk)->icsk_rto_min; if (dst && dst_metric_locked(dst, "
        "RTAX_RTO_MIN)) rto_min = dst_metric_rtt(dst, RTAX_RTO_MIN); and __tcp_set_rto(): srtt + rttvar, in jiffies",
        "{observed} ms: srtt ({srtt_before_ms} ms) plus the floor, {rto_floor_ms} ms once in jiffies, rounded up to "
        "a jiffy.",
        vary={"rto_min_ms": [10, 20, 30]}, fixed={"rtt_ms": 40, "seconds": 3}, answer_range=(0, 5000), unit="ms"),
    Question(
        "11.user_timeout", "11", "retransmission",
        "The peer goes silent after the handshake; the client sets TCP_USER_TIMEOUT={user_timeout} ms (tcp_retries2 "
        "stays 15) and writes 100 bytes. After how many seconds does the socket fail?",
        "failed_after_s",
        "net/ipv4/tcp_timer.c tcp_write_timeout(): expired = retransmits_timed_out(sk, retry_until, "
        "READ_ONCE(icsk->icsk_user_timeout)); (a user timeout replaces the limit tcp_retries2 gives; checked when the "
        "RTO timer fires; tcp_clamp_rto_to_user_timeout() "
        "shortens the last wait)",
        "{observed} s ({gave_up_because}): the user timeout counts from the first unacknowledged send, and the "
        "socket fails at the timer expiry that finds it passed.",
        vary={"user_timeout": [1000, 1500, 2500]}, answer_range=(0, 600), unit="s"),
    Question(
        "11.orphan", "11", "retransmission",
        "The application writes 100 bytes and closes; the peer has gone silent. tcp_orphan_retries={orphan_retries}, "
        "tcp_retries2 stays 15. After how many seconds does the kernel give up the orphan?",
        "failed_after_s",
        "net/ipv4/tcp_timer.c tcp_write_timeout(): if (sock_flag(sk, SOCK_DEAD)) { const bool alive = icsk->icsk_rto "
        "< TCP_RTO_MAX; retry_until = tcp_orphan_retries(sk, alive); ... }",
        "{observed} s ({gave_up_because}): an orphan's budget comes from tcp_orphan_retries, computed like "
        "tcp_retries2's from the doubling RTO (initial {rto_initial_s} s) and checked when the timer fires.",
        vary={"orphan_retries": [1, 2, 3]}, fixed={"orphan": True}, answer_range=(0, 600), unit="s"),
    Question(
        "11.spurious", "11", "spurious_rto",
        "A window-limited bulk sender on a 20 ms path; one second in, the RTT spikes to 1200 ms for 1.2 s and the RTO "
        "fires although nothing was lost. TCP timestamps {timestamps}, tcp_frto={frto} (the default). What tells the "
        "sender the retransmission was not needed, and gives its cwnd back?",
        "undone_by",
        "net/ipv4/tcp_input.c tcp_packet_delayed(): tp->retrans_stamp && tcp_tsopt_ecr_before(tp, tp->retrans_stamp) "
        "(an echo older than the retransmission); tcp_process_loss() (F-RTO: new data ACKed after the RTO); "
        "tcp_try_undo_dsack() (the receiver reports the duplicate)",
        "{observed} ({rtos} RTO expiries, cwnd restored: {cwnd_restored}): the first ACK's echoed timestamp predates "
        "the retransmission; without timestamps F-RTO sees new data ACKed after the RTO. (With neither, only DSACKs "
        "could undo it, a race with fast recovery the experiment does not grade: notebook 11.)",
        vary={"timestamps": [True, False]}, fixed={"frto": 2},
        choices={"the echoed timestamp": "timestamps", "F-RTO (new data ACKed after the RTO)": "F-RTO",
                 "a DSACK from the receiver": "DSACK", "nothing: cwnd stays cut": None}),
    # -- 12 keepalive -------------------------------------------------------------------------------------
    Question(
        "12.dead_peer", "12", "keepalive",
        "SO_KEEPALIVE with TCP_KEEPIDLE={idle}, TCP_KEEPINTVL={interval}, TCP_KEEPCNT={count}; the peer vanishes "
        "silently. After how many seconds of idleness does the socket fail with ETIMEDOUT?",
        "detected_after_s",
        "net/ipv4/tcp_timer.c tcp_keepalive_timer(): if (icsk->icsk_probes_out >= keepalive_probes(tp)) "
        "{ tcp_send_active_reset(...); tcp_write_err(sk); } else re-armed for keepalive_intvl_when(tp)",
        "{observed} s = idle + count x interval: the end comes one interval after the last of {probes_sent} probes.",
        vary={"idle": [1, 2, 3], "interval": [1, 2], "count": [1, 2, 3]}, fixed={"peer": "silent"},
        answer_range=(0, 60), unit="s"),
    Question(
        "12.user_timeout", "12", "keepalive",
        "SO_KEEPALIVE with TCP_KEEPIDLE={idle}, TCP_KEEPINTVL=1, TCP_KEEPCNT=1 and TCP_USER_TIMEOUT={user_timeout} ms; "
        "the peer vanishes silently. After how many seconds of idleness does the socket fail?",
        "detected_after_s",
        "net/ipv4/tcp_timer.c tcp_keepalive_timer(): if ((user_timeout != 0 && elapsed >= "
        "msecs_to_jiffies(user_timeout) && icsk->icsk_probes_out > 0) || (user_timeout == 0 && "
        "icsk->icsk_probes_out >= keepalive_probes(tp)))",
        "{observed} s after {probes_sent} probes: with a user timeout TCP_KEEPCNT no longer counts; the end comes at "
        "the first probe time at or past the user timeout.",
        vary={"idle": [1, 2], "user_timeout": [3000, 4000, 5000]}, fixed={"interval": 1, "count": 1,
                                                                          "peer": "silent"},
        answer_range=(0, 60), unit="s"),
    Question(
        "12.alive", "12", "keepalive",
        "SO_KEEPALIVE with TCP_KEEPIDLE={idle}, TCP_KEEPINTVL={interval}, TCP_KEEPCNT={count}, and the peer answers "
        "every probe. We watch until {count} probes have gone out: what has happened to the connection?",
        "error",
        "net/ipv4/tcp_input.c tcp_ack(): icsk->icsk_probes_out = 0; tp->rcv_tstamp = tcp_jiffies32; (an answered "
        "probe resets the count tcp_keepalive_timer() compares with keepalive_probes(tp))",
        "error {observed}, still {end_state}: each answer resets the probe count and restarts the idle time, so "
        "TCP_KEEPCNT is never reached; the probes went at {probe_times} s, max(idle, interval) apart.",
        vary={"idle": [1, 2], "interval": [1, 2]}, fixed={"count": 3, "peer": "alive"},
        choices={"nothing: it stays ESTABLISHED": None, "ETIMEDOUT: TCP_KEEPCNT probes were sent": "ETIMEDOUT",
                 "ECONNRESET": "ECONNRESET"}),
    Question(
        "12.close_wait", "12", "keepalive",
        "A server never calls close(): its socket is in CLOSE_WAIT, with SO_KEEPALIVE (TCP_KEEPIDLE={idle}, "
        "TCP_KEEPINTVL=1, TCP_KEEPCNT=3), and the client's host has forgotten the connection. Which error does the "
        "server's application see?",
        "error",
        "net/ipv4/tcp_timer.c tcp_keepalive_timer(): if (!sock_flag(sk, SOCK_KEEPOPEN) || ((1 << sk->sk_state) & "
        "(TCPF_CLOSE | TCPF_SYN_SENT))) goto out; (CLOSE_WAIT is not excluded: the probe goes out) and "
        "net/ipv4/tcp_input.c tcp_reset(): case TCP_CLOSE_WAIT: err = EPIPE;",
        "{observed}: the keepalive timer runs in CLOSE_WAIT, the probe draws a RST, and tcp_reset() reports EPIPE in "
        "CLOSE_WAIT (ECONNRESET in the other states).",
        vary={"idle": [1, 2, 3]}, fixed={"interval": 1, "count": 3, "peer": "close_wait_rst"},
        choices={"ECONNRESET": "ECONNRESET", "EPIPE": "EPIPE", "ETIMEDOUT": "ETIMEDOUT",
                 "none: no timer runs in CLOSE_WAIT": None}),
    Question(
        "12.fd_limit", "12", "fd_limit",
        "A server process with RLIMIT_NOFILE={limit} (ulimit -n) accepts and never closes; {connections} clients "
        "connect and hang up. How many connections does it accept?",
        "accepted",
        "fs/file.c alloc_fd(): if (fd >= end) goto out; (error = -EMFILE: no descriptor below RLIMIT_NOFILE)",
        "{observed}: the limit minus the descriptors the process already had open (the listener among them); the "
        "next accept() gets {error}, and {left_in_accept_queue} connected clients wait in the accept queue all the "
        "same.",
        vary={"limit": [24, 32, 48]}, fixed={"connections": 60, "source": "close_wait_leak"}, answer_range=(0, 60)),
    # -- 14 loss recovery --------------------------------------------------------------------------------
    Question(
        "14.repair", "14", "loss_recovery",
        "Ten segments, SACK on; the {drop} segment is lost (\"last\" is the 10th). What retransmits it first?",
        "repaired_by",
        "net/ipv4/tcp_recovery.c tcp_rack_reo_wnd(): the reordering window drops to 0 once tp->sacked_out >= "
        "tp->reordering (3 duplicate ACKs); a lost last segment gets no duplicate ACK, so the probe timer of "
        "tcp_schedule_loss_probe() (net/ipv4/tcp_output.c) repairs it",
        "{observed}, after {stall_ms} ms: a loss is repaired fast only if data after it reaches the receiver.",
        vary={"drop": ["5th", "last"]},
        choices={"fast retransmit (duplicate ACKs)": "fast retransmit", "tail loss probe (a timer)": "tail loss probe",
                 "RTO (the retransmission timeout)": "RTO"}),
    Question(
        "14.timeouts", "14", "loss_recovery",
        "The path drops {drop} (\"5th twice\": the 5th and its first retransmission); SACK {sack}; the sender writes "
        "{bytes} bytes. How many times does the retransmission timer fire (TCPTimeouts)?",
        "TCPTimeouts",
        "net/ipv4/tcp_output.c tcp_schedule_loss_probe(): returns early if (... !tcp_is_sack(tp) ...) (no probe "
        "without SACK); net/ipv4/tcp_recovery.c tcp_rack_detect_loss(): a lost retransmission is found only if a "
        "segment sent after it was delivered; otherwise tcp_retransmit_timer() repairs",
        "{observed}: repairs {repairs}, a stall of {stall_ms} ms. Only a timer repairs what no later segment can reveal; "
        "the probe needs SACK, RACK needs data sent after the retransmission.",
        vary={"drop": ["last", "5th twice"], "sack": [True, False], "bytes": [14480, 100_000]},
        answer_range=(0, 20)),
    # -- 16 AQM ------------------------------------------------------------------------------------------
    Question(
        "16.codel_rtt", "16", "aqm",
        "CUBIC through 20 Mbit/s, a {rtt_ms} ms path and a 400-packet buffer managed by CoDel, for 5 s. What median "
        "smoothed RTT does the sender measure, in ms?",
        "srtt_p50_ms",
        "include/net/codel_impl.h codel_should_drop(): vars->ldelay = now - skb_time_func(skb); if "
        "(codel_time_before(vars->ldelay, params->target) || ...) (under the 5 ms target nothing is dropped)",
        "{observed} ms: within a few ms of the path's {rtt_ms} ms; CoDel drops at the head once the sojourn stays "
        "above 5 ms for 100 ms.",
        vary={"rtt_ms": [20, 40, 60]}, fixed={"queue": "codel", "rate_mbit": 20, "buffer_packets": 400,
                                              "duration": 5},
        answer_range=(0, 2000), unit="ms"),
    Question(
        "16.ecn_loss", "16", "aqm",
        "CUBIC through 20 Mbit/s, a {rtt_ms} ms path and a 400-packet buffer managed by CoDel, for 5 s, with ECN on "
        "at both ends (tcp_ecn=1). How many loss recoveries (TCPSackRecovery + TCPRenoRecovery + RTO expiries) "
        "does the sender go through?",
        "loss_events",
        "include/net/codel_impl.h codel_dequeue(): if (params->ecn && INET_ECN_set_ce(skb)) { stats->ecn_mark++; } "
        "else { drop_func(skb, ctx); ... } (an ECN-capable packet is marked CE, not dropped)",
        "{observed}: CoDel marked {ce_marks} packets instead of dropping them; the sender cut its window "
        "{ecn_reductions} times (tcp_enter_cwr()) and retransmitted {retransmits} packets.",
        vary={"rtt_ms": [20, 40, 60]},
        fixed={"queue": "codel", "ecn": True, "rate_mbit": 20, "buffer_packets": 400, "duration": 5},
        answer_range=(0, 1000)),
    Question(
        "16.paced_rtt", "16", "aqm",
        "CUBIC through 20 Mbit/s, a {rtt_ms} ms path and a 400-packet drop-tail buffer for 5 s, the sender paced at "
        "{pacing_mbit} Mbit/s (SO_MAX_PACING_RATE). What median smoothed RTT does it measure, in ms?",
        "srtt_p50_ms",
        "net/ipv4/tcp_output.c tcp_pacing_check(): if (tcp_sk(sk)->tcp_wstamp_ns <= tcp_sk(sk)->tcp_clock_cache) "
        "return false; (else an hrtimer holds the next burst: packets reach the link no faster than the cap)",
        "{observed} ms: about the path's {rtt_ms} ms; paced below the link rate the queue never builds "
        "(median sojourn {sojourn_p50_ms} ms).",
        vary={"rtt_ms": [20, 40, 60], "pacing_mbit": [16, 18, 19]},
        fixed={"queue": "droptail", "rate_mbit": 20, "buffer_packets": 400, "duration": 5},
        answer_range=(0, 2000), unit="ms"),
    # -- 15 congestion -------------------------------------------------------------------------------------
    Question(
        "15.bufferbloat", "15", "congestion",
        "CUBIC through 10 Mbit/s, a 20 ms RTT and a {buffer_packets}-packet buffer for 5 s (a packet takes 1.2 ms "
        "to leave). What is the largest smoothed RTT, in ms?",
        "srtt_max_ms",
        "net/sched/sch_fifo.c bfifo/pfifo_enqueue(): if (likely(sch->q.qlen < READ_ONCE(sch->limit))) return "
        "qdisc_enqueue_tail(skb, sch); (CUBIC fills the buffer; each queued packet is 1.2 ms of RTT)",
        "{observed} ms: about 20 + {buffer_packets} x 1.2 ms once the buffer fills, which a loss-based algorithm "
        "always does.",
        vary={"buffer_packets": [50, 100, 150, 200]},
        fixed={"rate_mbit": 10, "rtt_ms": 20, "algorithm": "cubic", "duration": 5}, answer_range=(0, 2000),
        unit="ms"),
    Question(
        "15.slow_start", "15", "congestion",
        "Reno through 20 Mbit/s, 40 ms and a {buffer_packets}-packet buffer for 4 s: slow start doubles cwnd every "
        "RTT from 10. At what cwnd (packets) does slow start end?",
        "slow_start_exit_cwnd",
        "net/ipv4/tcp_cong.c tcp_slow_start(): u32 cwnd = min(tcp_snd_cwnd(tp) + acked, tp->snd_ssthresh); "
        "(every ACK adds a packet; the first drop is seen a round trip later)",
        "{observed}: about twice what the path holds (BDP 67 + {buffer_packets}), because the loss is noticed a "
        "round trip after it happened.",
        vary={"buffer_packets": [30, 50, 80]},
        fixed={"rate_mbit": 20, "rtt_ms": 40, "algorithm": "reno", "duration": 4}, answer_range=(0, 5000)),
    Question(
        "15.cubic_exit", "15", "congestion",
        "CUBIC (with HyStart) through 20 Mbit/s, 40 ms and a {buffer_packets}-packet buffer for 4 s: slow start "
        "doubles cwnd every RTT from 10. At what cwnd (packets) does slow start end?",
        "slow_start_exit_cwnd",
        "net/ipv4/tcp_cubic.c hystart_update(): if (ca->curr_rtt > ca->delay_min + HYSTART_DELAY_THRESH(ca->delay_min "
        ">> 3)) { ca->found = 1; ... tp->snd_ssthresh = tcp_snd_cwnd(tp); }",
        "{observed}, by {slow_start_exit_by}: HyStart sees the RTT rise (or the ACK train stretch) as the queue starts "
        "to build and ends slow start near the BDP (67), whatever the buffer; Reno overshot to about twice "
        "BDP + buffer.",
        vary={"buffer_packets": [30, 50, 80]},
        fixed={"rate_mbit": 20, "rtt_ms": 40, "algorithm": "cubic", "duration": 4}, answer_range=(0, 5000)),
    Question(
        "15.bbr_rtt", "15", "congestion",
        "BBR through 10 Mbit/s, a {rtt_ms} ms path and a 200-packet buffer for 5 s (CUBIC filled that buffer: "
        "about {rtt_ms} + 240 ms). What median smoothed RTT does BBR measure, in ms?",
        "srtt_p50_ms",
        "net/ipv4/tcp_bbr.c bbr_set_cwnd(): target = bbr_inflight(sk, bw, gain) (about 2 x the measured "
        "bandwidth x min RTT), and bbr_set_pacing_rate(): pacing at the measured bandwidth",
        "{observed} ms: within a few ms of the path's {rtt_ms} ms; BBR paces at the bandwidth it measured and caps "
        "what is in flight, so the buffer never fills (at most {queue_max_packets} packets queued).",
        vary={"rtt_ms": [20, 30, 40]},
        fixed={"rate_mbit": 10, "buffer_packets": 200, "algorithm": "bbr", "duration": 5}, answer_range=(0, 2000),
        unit="ms"),
    # -- 18 one connection whole ------------------------------------------------------------------------
    Question(
        "18.dupacks", "18", "loss_recovery",
        "Ten segments over a {rtt_ms} ms path, SACK on, the 5th is lost. How many duplicate ACKs does the sender "
        "receive before it retransmits the 5th?",
        "dupacks_before_retransmit",
        "net/ipv4/tcp_recovery.c tcp_rack_reo_wnd(): the reordering window drops to 0 once tp->sacked_out >= "
        "tp->reordering (net.ipv4.tcp_reordering, 3); tcp_rack_detect_loss() then marks the hole lost",
        "{observed}: the third duplicate ACK (with its SACK block) makes RACK mark the hole lost; fast retransmit "
        "follows at once.",
        vary={"rtt_ms": [10, 20, 40]}, fixed={"drop": "5th"}, answer_range=(0, 10)),
)

#: id -> Question, in course order
QUESTIONS: dict[str, Question] = {q.id: q for q in sorted(_ALL, key=lambda q: q.notebook)}


def question(qid: str) -> Question:
    """The question ``qid`` (ValueError naming the ids)."""
    if qid not in QUESTIONS:
        raise ValueError(f"question must be one of {', '.join(QUESTIONS)}, not {qid!r}")
    return QUESTIONS[qid]


def for_notebook(notebook: str) -> list[Question]:
    """The questions of one notebook (``"03"``), in order."""
    return [q for q in QUESTIONS.values() if q.notebook == notebook]
