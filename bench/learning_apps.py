"""bench/learning: the real web applications, from Debian 12 packages, run
privately on loopback.

One nginx (the origin herald proxies to, plain HTTP/1.1) serves every app
on a port of its own; PHP apps go through a private php-fpm, gitweb
through a private fcgiwrap, WordPress's database is a private mariadbd on a
unix socket.  Every data directory, socket, log and pid file lives under
the run's temp dir; the system services are never used.  The applications'
files are not touched: what is configured here is configuration (the
WordPress host config file Debian's wp-config.php looks up in
/etc/wordpress, a phpMyAdmin conf.d file that only acts for requests from
this bench, environment for Roundcube and gitweb), and the two files put
under /etc are removed at the end.
"""
import http.client
import os
import pwd
import secrets
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

# Pages per app: (name, path, kind).  Kinds are only labels for the tables.
APPS = {
    "wordpress": {
        "packages": ["wordpress", "wordpress-theme-twentytwentythree", "mariadb-server",
                     "php8.2-fpm"],
        "pages": [("home", "/", "front page (latest posts)"),
                  ("post", "/?p=1", "single post with comments"),
                  ("page", "/?page_id=2", "static page"),
                  ("category", "/?cat=1", "category archive")],
    },
    "phpmyadmin": {
        "packages": ["phpmyadmin", "php8.2-fpm"],
        "pages": [("login", "/", "login page"),
                  ("manual", "/doc/html/index.html", "bundled manual (Sphinx)")],
    },
    "roundcube": {
        "packages": ["roundcube-core", "php8.2-fpm"],
        "pages": [("login", "/", "login page")],
    },
    "gitweb": {
        "packages": ["gitweb", "git", "fcgiwrap"],
        "pages": [("summary", "/?p=demo.git;a=summary", "project summary"),
                  ("tree", "/?p=demo.git;a=tree;hb=HEAD", "tree"),
                  ("commit", "/?p=demo.git;a=commit;h=HEAD", "commit with diff stat"),
                  ("blob", "/?p=demo.git;a=blob;f=README;hb=HEAD", "blob view")],
    },
    "nodejs-doc": {
        "packages": ["nodejs-doc"],
        "pages": [("index", "/index.html", "index"),
                  ("path", "/path.html", "API page"),
                  ("fs", "/fs.html", "long API page (0.5 MB)")],
    },
    "sphinx-doc": {
        "packages": ["sphinx-doc"],
        "pages": [("index", "/index.html", "index"),
                  ("quickstart", "/usage/quickstart.html", "narrative page"),
                  ("configuration", "/usage/configuration.html", "long reference page (290 KB)")],
    },
}
PHP_APPS = {"wordpress", "phpmyadmin", "roundcube"}

FPM = "/usr/sbin/php-fpm8.2"
MARIADBD = "/usr/sbin/mariadbd"
FCGIWRAP = "/usr/sbin/fcgiwrap"
NGINX = "/usr/sbin/nginx"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def package_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                       text=True)
    return r.stdout.strip() if r.returncode == 0 else None


class Stack:
    """The origin stack for a set of apps.  start() brings it up; stop()
    ends every process it started, by PID, and removes what it wrote
    outside its temp dir.  app_port[name] is each app's origin port."""

    def __init__(self, tmp, apps, log):
        self.tmp = tmp
        self.apps = list(apps)
        self.log = log
        self.procs = []        # (name, Popen)
        self.etc_files = []    # files written outside tmp, removed by stop()
        self.app_port = {}
        self.pages = {}
        self.root = os.geteuid() == 0
        self.www = pwd.getpwnam("www-data") if self.root else None
        self.tag = "herald-learning-%d" % os.getpid()
        self.access_log = os.path.join(tmp, "nginx", "access.log")
        self.notes = []

    # ---- helpers
    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def mkdir(self, *p, owner=None, mode=0o755):
        d = self.path(*p)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, mode)
        if owner and self.root:
            pw = pwd.getpwnam(owner)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        return d

    def chown_tree(self, d, owner):
        if not self.root:
            return
        pw = pwd.getpwnam(owner)
        for base, dirs, files in os.walk(d):
            os.chown(base, pw.pw_uid, pw.pw_gid)
            for f in files:
                os.chown(os.path.join(base, f), pw.pw_uid, pw.pw_gid)

    def spawn(self, name, argv, **kw):
        out = open(self.path("logs", name + ".log"), "ab")
        # own session: its process group id is its pid, so that stop() can
        # reach children it may leave behind by that id
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        out.close()
        self.procs.append((name, p))
        self.log("started %s (pid %d): %s" % (name, p.pid, " ".join(argv)))
        return p

    def alive(self, p, name):
        if p.poll() is not None:
            with open(self.path("logs", name + ".log"), errors="replace") as f:
                tail = f.read()[-2000:]
            raise RuntimeError("%s exited with %s:\n%s" % (name, p.returncode, tail))

    def as_www(self):
        """argv prefix that runs a command as www-data (when root)."""
        if not self.root:
            return []
        return ["setpriv", "--reuid=www-data", "--regid=www-data", "--init-groups"]

    # ---- the pieces
    def start(self):
        os.chmod(self.tmp, 0o755)  # www-data and mysql reach their dirs inside
        self.mkdir("logs")
        need_php = bool(PHP_APPS & set(self.apps))
        if "wordpress" in self.apps:
            self.start_mariadb()
        if "roundcube" in self.apps:
            self.prepare_roundcube()
        if "gitweb" in self.apps:
            self.prepare_gitweb()
            self.start_fcgiwrap()
        if "phpmyadmin" in self.apps:
            self.prepare_phpmyadmin()
        if need_php:
            self.start_fpm()
        if "wordpress" in self.apps:
            self.prepare_wordpress()
        self.start_nginx()
        if "wordpress" in self.apps:
            self.install_wordpress()
        for app in self.apps:
            self.check_app(app)

    def start_mariadb(self):
        data = self.mkdir("mysql", "data", owner="mysql" if self.root else None)
        run = self.mkdir("mysql", "run", owner="mysql" if self.root else None)
        user = ["--user=mysql"] if self.root else []
        r = subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + data,
                            "--auth-root-authentication-method=socket", "--skip-test-db"] + user,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("mariadb-install-db failed: " + r.stderr[-2000:])
        self.mysql_sock = os.path.join(run, "mysqld.sock")
        p = self.spawn("mariadbd", [MARIADBD, "--no-defaults", "--datadir=" + data,
                                    "--socket=" + self.mysql_sock, "--skip-networking",
                                    "--pid-file=" + os.path.join(run, "mysqld.pid"),
                                    "--innodb-buffer-pool-size=32M"] + user)
        wait_for(lambda: (self.alive(p, "mariadbd"), os.path.exists(self.mysql_sock))[1], 60,
                 "mariadbd's socket")
        self.db_pass = secrets.token_hex(12)
        sql = ("CREATE DATABASE wordpress; CREATE USER 'wp'@'localhost' IDENTIFIED BY '%s'; "
               "GRANT ALL ON wordpress.* TO 'wp'@'localhost';" % self.db_pass)
        r = subprocess.run(["mariadb", "--no-defaults", "-S", self.mysql_sock, "-uroot", "-e", sql],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("creating the WordPress database failed: " + r.stderr)

    def start_fpm(self):
        run = self.mkdir("php", "run", owner="www-data")
        sess = self.mkdir("php", "sessions", owner="www-data", mode=0o700)
        self.fpm_sock = os.path.join(run, "fpm.sock")
        conf = self.path("php", "php-fpm.conf")
        user = "user = www-data\ngroup = www-data\n" if self.root else ""
        with open(conf, "w") as f:
            f.write("""[global]
pid = %(run)s/fpm.pid
error_log = %(log)s
daemonize = no

[bench]
%(user)slisten = %(sock)s
listen.mode = 0666
pm = static
pm.max_children = 4
catch_workers_output = yes
php_admin_value[session.save_path] = %(sess)s
php_admin_value[error_log] = %(log)s
php_admin_flag[log_errors] = on
""" % {"run": run, "log": self.path("logs", "php-errors.log"), "user": user,
                "sock": self.fpm_sock, "sess": sess})
        # php-fpm (as root) opens its error log itself; the workers' own log
        # must be writable by www-data
        open(self.path("logs", "php-errors.log"), "a").close()
        self.chown_tree(self.path("logs", "php-errors.log"), "www-data")
        p = self.spawn("php-fpm", [FPM, "--nodaemonize", "--fpm-config", conf])
        wait_for(lambda: (self.alive(p, "php-fpm"), os.path.exists(self.fpm_sock))[1], 30,
                 "php-fpm's socket")

    def prepare_wordpress(self):
        # Debian's /usr/share/wordpress/wp-config.php loads
        # /etc/wordpress/config-$WORDPRESS_CONFIG.php (fastcgi_param below).
        conf = "/etc/wordpress/config-%s.php" % self.tag
        with open(conf, "w") as f:
            f.write("""<?php
/* written by herald's bench/learning for its private WordPress; removed at its end */
define('DB_NAME', 'wordpress');
define('DB_USER', 'wp');
define('DB_PASSWORD', '%s');
define('DB_HOST', 'localhost:%s');
define('WP_CONTENT_DIR', '/var/lib/wordpress/wp-content');
/* the site answers under whatever host:port it is asked by (origin or herald) */
$herald_scheme = (isset($_SERVER['HTTP_X_FORWARDED_PROTO']) &&
                  $_SERVER['HTTP_X_FORWARDED_PROTO'] == 'https') ? 'https' : 'http';
define('WP_HOME', $herald_scheme . '://' . $_SERVER['HTTP_HOST']);
define('WP_SITEURL', WP_HOME);
/* no outside network here: no cron loopback requests, no update checks */
define('DISABLE_WP_CRON', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
""" % (self.db_pass, self.mysql_sock))
        os.chmod(conf, 0o644)
        self.etc_files.append(conf)

    def install_wordpress(self):
        port = self.app_port["wordpress"]
        base = "http://127.0.0.1:%d" % port
        self.admin_pass = secrets.token_hex(10)
        form = urllib.parse.urlencode({
            "weblog_title": "herald learning bench", "user_name": "admin",
            "admin_password": self.admin_pass, "admin_password2": self.admin_pass,
            "pw_weak": "1", "admin_email": "admin@example.org", "blog_public": "0",
            "language": "", "Submit": "Install WordPress"}).encode()
        req = urllib.request.Request(base + "/wp-admin/install.php?step=2", data=form)
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read().decode("utf-8", "replace")
        if "Success!" not in body and "already installed" not in body:
            raise RuntimeError("WordPress install did not succeed: " + body[:3000])
        # The installer turns pretty permalinks on (its loopback test
        # passes) within the request that registered the taxonomies without
        # them, and saves rewrite rules without category archives; drop
        # them so that the next request rebuilds them, as a visit to
        # Settings > Permalinks would.
        r = subprocess.run(["mariadb", "--no-defaults", "-S", self.mysql_sock, "-uroot",
                            "wordpress", "-e",
                            "DELETE FROM wp_options WHERE option_name = 'rewrite_rules'"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("flushing WordPress's rewrite rules failed: " + r.stderr)
        self.log("WordPress installed at %s" % base)

    def prepare_roundcube(self):
        d = self.mkdir("roundcube", owner="www-data")
        self.mkdir("roundcube", "temp", owner="www-data")
        self.mkdir("roundcube", "logs", owner="www-data")
        db = os.path.join(d, "roundcube.db")
        with open("/usr/share/roundcube/SQL/sqlite.initial.sql", "rb") as f:
            r = subprocess.run(["sqlite3", db], stdin=f, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError("roundcube sqlite init failed: %r" % r.stderr)
        self.chown_tree(d, "www-data")
        self.roundcube_dsn = "sqlite:///%s?mode=0640" % db

    def prepare_phpmyadmin(self):
        # phpMyAdmin keeps its twig cache in TempDir; point it into the temp
        # dir, only for requests that carry this run's fastcgi_param.
        self.mkdir("phpmyadmin", "tmp", owner="www-data")
        conf = "/etc/phpmyadmin/conf.d/%s.php" % self.tag
        with open(conf, "w") as f:
            f.write("""<?php
/* written by herald's bench/learning; acts only on its own requests; removed at its end */
if (getenv('HERALD_LEARNING_TMP') === '%s') {
    $cfg['TempDir'] = '%s';
}
""" % (self.tag, self.path("phpmyadmin", "tmp")))
        os.chmod(conf, 0o644)
        self.etc_files.append(conf)

    def prepare_gitweb(self):
        """A small repository with a fixed history (dates and author fixed,
        so its hashes are the same on every machine)."""
        work = self.path("git", "work")
        repo = self.path("git", "repos", "demo.git")
        os.makedirs(work)
        env = dict(os.environ, GIT_AUTHOR_NAME="Bench Author", GIT_AUTHOR_EMAIL="a@example.org",
                   GIT_COMMITTER_NAME="Bench Author", GIT_COMMITTER_EMAIL="a@example.org",
                   HOME=self.path("git"), GIT_CONFIG_NOSYSTEM="1")

        def git(*a, date=None):
            e = dict(env)
            if date:
                e["GIT_AUTHOR_DATE"] = e["GIT_COMMITTER_DATE"] = date
            subprocess.run(["git", "-C", work] + list(a), check=True, env=e,
                           capture_output=True)

        git("init", "-q", "-b", "main")
        files = {
            "README": "demo\n====\n\nA small repository for herald's learning bench.\n",
            "src/main.c": "#include <stdio.h>\n\nint main(void)\n{\n    puts(\"hello\");\n"
                          "    return 0;\n}\n",
            "src/util.h": "#ifndef UTIL_H\n#define UTIL_H\nint add(int a, int b);\n#endif\n",
            "Makefile": "all: demo\n\ndemo: src/main.c\n\tcc -o $@ $<\n",
        }
        for i, (name, text) in enumerate(files.items()):
            p = os.path.join(work, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)
            git("add", name)
            git("commit", "-q", "-m", "add %s\n\nStep %d of the demo history." % (name, i + 1),
                date="2024-01-0%d 12:00:00 +0000" % (i + 1))
        with open(os.path.join(work, "README"), "a") as f:
            f.write("\nBuild with make.\n")
        git("commit", "-q", "-am", "README: say how to build", date="2024-01-09 12:00:00 +0000")
        subprocess.run(["git", "clone", "-q", "--bare", work, repo], check=True, env=env,
                       capture_output=True)
        with open(os.path.join(repo, "description"), "w") as f:
            f.write("demo repository for herald's learning bench\n")
        # git refuses repositories owned by another user: give it to www-data
        self.chown_tree(self.path("git", "repos"), "www-data")
        self.gitweb_conf = self.path("git", "gitweb.conf")
        with open(self.gitweb_conf, "w") as f:
            f.write('$projectroot = "%s";\n$git_temp = "%s";\n' % (
                self.path("git", "repos"), self.mkdir("git", "tmp", owner="www-data")))
        os.chmod(self.gitweb_conf, 0o644)

    def start_fcgiwrap(self):
        run = self.mkdir("fcgiwrap", owner="www-data")
        self.fcgi_sock = os.path.join(run, "fcgiwrap.sock")
        # one process (no -c): gitweb's requests come one at a time
        p = self.spawn("fcgiwrap", self.as_www() + [FCGIWRAP, "-s", "unix:" + self.fcgi_sock])
        wait_for(lambda: (self.alive(p, "fcgiwrap"), os.path.exists(self.fcgi_sock))[1], 30,
                 "fcgiwrap's socket")

    def fastcgi_params(self):
        """Debian's /etc/nginx/fastcgi_params without its HTTP_HOST $host
        line, which drops the port: WordPress builds its URLs from
        HTTP_HOST, and they must keep the port the browser used.  Without
        the line nginx passes the Host header itself as HTTP_HOST."""
        with open("/etc/nginx/fastcgi_params") as f:
            lines = [l for l in f if not l.split()[:2] == ["fastcgi_param", "HTTP_HOST"]]
        p = self.path("nginx", "fastcgi_params")
        with open(p, "w") as f:
            f.write("".join(lines))
        return p

    def nginx_servers(self):
        out = []
        params = self.fastcgi_params()
        php = lambda extra="": """
        location ~ \\.php$ {
            include %s;
            fastcgi_param SCRIPT_FILENAME $request_filename;
            fastcgi_index index.php;
            fastcgi_pass unix:%s;%s
        }""" % (params, self.fpm_sock, extra)
        for app in self.apps:
            port = self.app_port[app] = free_port()
            head = "    server {\n        listen 127.0.0.1:%d;\n" % port
            if app == "wordpress":
                # Debian's example (/usr/share/doc/wordpress/examples/nginx-wordpress.conf),
                # minus its access_log off for favicon/robots
                out.append(head + """        root /usr/share/wordpress;
        index index.php;
        location / {
            try_files $uri $uri/ /index.php?$args;
        }
        location ~ ^/wp-content/(.*)$ {
            alias /var/lib/wordpress/wp-content/$1;
        }%s
        location ~* \\.(js|css|png|jpg|jpeg|gif|ico)$ {
            expires max;
            log_not_found off;
        }
    }
""" % php("\n            fastcgi_param WORDPRESS_CONFIG %s;" % self.tag))
            elif app == "phpmyadmin":
                out.append(head + """        root /usr/share/phpmyadmin;
        index index.php;
        location ~ ^/(libraries|templates|setup/lib|sql)/ {
            deny all;
        }%s
    }
""" % php("\n            fastcgi_param HERALD_LEARNING_TMP %s;" % self.tag))
            elif app == "roundcube":
                out.append(head + """        root /var/lib/roundcube/public_html;
        index index.php;%s
    }
""" % php("""
            fastcgi_param ROUNDCUBE_DB_DSNW "%s";
            fastcgi_param ROUNDCUBE_TEMP_DIR %s;
            fastcgi_param ROUNDCUBE_LOG_DIR %s;""" % (self.roundcube_dsn,
                                                       self.path("roundcube", "temp"),
                                                       self.path("roundcube", "logs"))))
            elif app == "gitweb":
                out.append(head + """        location /static/ {
            alias /usr/share/gitweb/static/;
        }
        location = / {
            include %s;
            fastcgi_param SCRIPT_FILENAME /usr/share/gitweb/gitweb.cgi;
            fastcgi_param GITWEB_CONFIG %s;
            fastcgi_pass unix:%s;
        }
    }
""" % (params, self.gitweb_conf, self.fcgi_sock))
            elif app == "nodejs-doc":
                out.append(head + "        root /usr/share/doc/nodejs/api;\n    }\n")
            elif app == "sphinx-doc":
                out.append(head + "        root /usr/share/doc/sphinx-doc/html;\n    }\n")
            else:
                raise ValueError(app)
        return "".join(out)

    def start_nginx(self):
        d = self.mkdir("nginx")
        for t in ("body", "fastcgi", "proxy", "uwsgi", "scgi"):
            self.mkdir("nginx", t, owner="www-data", mode=0o700)
        servers = self.nginx_servers()
        user = "user www-data www-data;\n" if self.root else ""
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""%(user)sdaemon off;
master_process on;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path %(d)s/body;
    fastcgi_temp_path %(d)s/fastcgi;
    proxy_temp_path %(d)s/proxy;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    log_format bench '$msec $server_port "$request_method $request_uri" $status '
                     '$body_bytes_sent "$http_user_agent" "$http_via" $connection';
    access_log %(d)s/access.log bench;
    sendfile on;
    keepalive_timeout 65;
%(servers)s}
""" % {"user": user, "d": d, "servers": servers})
        r = subprocess.run([NGINX, "-t", "-p", d + "/", "-c", conf], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError("nginx -t failed: " + r.stderr)
        p = self.spawn("nginx", [NGINX, "-p", d + "/", "-c", conf])
        for app, port in self.app_port.items():
            wait_for(lambda: (self.alive(p, "nginx"), port_open(port))[1], 30,
                     "nginx on port %d" % port)

    def check_app(self, app):
        """Every page answers 200 with HTML from the origin.  A page that
        redirects within the site (WordPress sends /?p=1 to its permalink,
        which has the install date in it) is replaced by its target:
        self.pages[app] lists the paths the bench visits."""
        self.pages[app] = []
        for name, path, kind in APPS[app]["pages"]:
            start = path
            for _ in range(5):
                c = http.client.HTTPConnection("127.0.0.1", self.app_port[app], timeout=60)
                c.request("GET", path)
                r = c.getresponse()
                body = r.read()
                c.close()
                loc = r.getheader("location")
                if r.status in (301, 302, 303, 307, 308) and loc:
                    u = urllib.parse.urlsplit(urllib.parse.urljoin(
                        "http://127.0.0.1:%d%s" % (self.app_port[app], path), loc))
                    if u.netloc != "127.0.0.1:%d" % self.app_port[app]:
                        raise RuntimeError("%s %s redirects off-site to %s" % (app, path, loc))
                    path = (u.path or "/") + ("?" + u.query if u.query else "")
                    continue
                break
            ctype = r.getheader("content-type", "")
            if r.status != 200 or "html" not in ctype:
                raise RuntimeError("%s %s: status %d (%s), location %s: %s" % (
                    app, path, r.status, ctype, loc, body[:1500].decode("utf-8", "replace")))
            self.pages[app].append((name, path, kind))
            self.log("%s %s%s: %d bytes of %s" % (app, path, "" if path == start else
                                                  " (redirected from %s)" % start,
                                                  len(body), ctype))

    def versions(self):
        out = {}
        for app in self.apps:
            out[app] = {p: package_version(p) for p in APPS[app]["packages"]}
        out["nginx"] = package_version("nginx-light") or package_version("nginx")
        return out

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    self.log("%s (pid %d) did not stop on SIGTERM; SIGKILL" % (name, p.pid))
                    p.kill()
                    p.wait(5)
                self.log("stopped %s (pid %d)" % (name, p.pid))
            try:  # anything left in its process group (pgid = its pid)
                os.killpg(p.pid, signal.SIGKILL)
                self.log("killed what was left in %s's process group %d" % (name, p.pid))
            except ProcessLookupError:
                pass
        self.procs = []
        for f in self.etc_files:
            try:
                os.unlink(f)
                self.log("removed " + f)
            except FileNotFoundError:
                pass
        self.etc_files = []
