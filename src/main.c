/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <sysexits.h>
#include <uv.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "manager.h"
#include "status.h"

static void help(void) {
        printf("Usage: provwatch [-c FILE] [run|once|check-config|status [--json]]\n"
               "\n"
               "Watches Microsoft Partner Center orders until they are provisioned and reports every\n"
               "line item status change to the journal and to webhooks.\n"
               "\n"
               "Commands:\n"
               "  run            run the daemon in the foreground (default)\n"
               "  once           poll every watched order once, emit, deliver, save, exit\n"
               "  check-config   validate the configuration and print a summary\n"
               "  status         print watched orders, their statuses and webhook queues\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE   configuration file (default %s)\n"
               "      --print-events  also print every event as a JSON line on stdout (default for once)\n"
               "      --json          machine-readable status\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n"
               "\n"
               "See provwatch(8) and provwatch.conf(5).\n",
               CONFIG_DEFAULT_PATH);
}

static Config *load_config(const char *path, ConfigFlags flags) {
        Config *c = NULL;
        int r = config_load_full(path, flags, stderr, &c);
        if (r < 0) {
                if (r != -EINVAL)
                        log_error_errno(r, "Cannot read configuration '%s': %m", path);
                return NULL;
        }
        return c;
}

static int run_manager(const char *path, ManagerMode mode, bool print_events) {
        /* Events are printed a committed batch at a time and flushed after it (outbox.c): 32 KiB
         * a write instead of stdio's default 4 KiB for a pipe or file. */
        static char stdout_buffer[32 * 1024];
        if (print_events)
                (void) setvbuf(stdout, stdout_buffer, _IOFBF, sizeof stdout_buffer);
        Config *c = load_config(path, 0);
        if (!c)
                return EX_CONFIG;
        if (http_global_init() < 0) {
                config_free(c);
                log_error("Cannot initialise libcurl.");
                return 1;
        }
        uv_loop_t loop;
        uv_loop_init(&loop);
        Manager *m = NULL;
        ManagerOptions o = { .mode = mode, .print_events = print_events, .config_path = path };
        int status;
        int r = manager_new(&loop, c, &o, &m);
        if (r < 0)
                status = 1;
        else
                status = manager_run(m);
        if (!m)
                config_free(c);
        manager_free(m);
        uv_run(&loop, UV_RUN_DEFAULT);
        r = uv_loop_close(&loop);
        if (r < 0)
                log_debug("uv_loop_close: %s", uv_strerror(r));
        http_global_cleanup();
        return status;
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_PRINT_EVENTS, ARG_JSON, ARG_DEBUG };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "print-events", no_argument, NULL, ARG_PRINT_EVENTS },
                { "json", no_argument, NULL, ARG_JSON },
                { "debug", no_argument, NULL, ARG_DEBUG },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        const char *config_path = CONFIG_DEFAULT_PATH;
        bool print_events = false, json = false;
        int c;

        /* Fixed thresholds. Blocks of 128 KiB and more (the order table's arrays, the hash table, an
         * orders-dir file read whole) are mapped and go back to the kernel when freed: glibc's default
         * raises the threshold to the largest block freed so far, after which the arrays left behind
         * by a growing table stay in the heap as holes (~0.7 MB of the peak RSS at 20,000 orders).
         * The heap's free top is given back only beyond 4 MiB, as the default would after that
         * raise: at 128 KiB it shrank and grew again with every batch of results (7,400 brk calls
         * in a first once over 20,000 orders). */
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
        signal(SIGPIPE, SIG_IGN);
        log_open(LOG_TARGET_AUTO);
        const char *e = getenv("PROVWATCH_DEBUG");
        if (e && *e && !streq(e, "0"))
                log_set_max_level(LOG_DEBUG);

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case ARG_PRINT_EVENTS:
                        print_events = true;
                        break;
                case ARG_JSON:
                        json = true;
                        break;
                case ARG_DEBUG:
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("provwatch %s\n", PROVWATCH_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Try 'provwatch --help'.\n");
                        return EX_USAGE;
                }

        const char *verb = optind < argc ? argv[optind++] : "run";
        if (optind < argc) {
                fprintf(stderr, "provwatch: unexpected argument '%s'. Try 'provwatch --help'.\n", argv[optind]);
                return EX_USAGE;
        }
        if (json && !streq(verb, "status")) {
                fprintf(stderr, "provwatch: --json goes with the status command.\n");
                return EX_USAGE;
        }
        if (print_events && !streq(verb, "run") && !streq(verb, "once")) {
                fprintf(stderr, "provwatch: --print-events goes with run or once.\n");
                return EX_USAGE;
        }

        if (streq(verb, "run"))
                return run_manager(config_path, MANAGER_RUN, print_events);
        if (streq(verb, "once"))
                return run_manager(config_path, MANAGER_ONCE, true);
        if (streq(verb, "check-config")) {
                Config *cfg = load_config(config_path, 0);
                if (!cfg)
                        return EX_CONFIG;
                for (char **w = cfg->warnings; w && *w; w++)
                        log_warning("%s", *w);
                config_print_summary(cfg, stdout);
                config_free(cfg);
                return 0;
        }
        if (streq(verb, "status")) {
                /* secrets are systemd credentials of the service, not readable from a shell */
                Config *cfg = load_config(config_path, CONFIG_SKIP_SECRETS);
                if (!cfg)
                        return EX_CONFIG;
                int r = status_print(cfg, json, stdout);
                config_free(cfg);
                return r;
        }
        fprintf(stderr, "provwatch: unknown command '%s'. Try 'provwatch --help'.\n", verb);
        return EX_USAGE;
}
