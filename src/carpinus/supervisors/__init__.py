"""Process management: more than one process serving the same sockets.

multiprocess  Supervisor: binds the sockets, starts N worker processes on
              them, replaces the ones that die, rolls them over on SIGHUP
supervised    the worker side: a Server that reports READY, heartbeats and
              STOPPING to the supervisor over a pipe
reload        --reload: the file watcher whose changes make the supervisor
              roll its workers over
recycling     --max-worker-memory, --max-worker-lifetime: when a healthy
              worker is due for replacement

One process serving alone needs none of this (carpinus.main runs a Server
directly, unless --supervise or a recycling option asks for a supervisor);
under gunicorn, carpinus.workers takes the worker's place.
"""
