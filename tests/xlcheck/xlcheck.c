/*
 * xlcheck: read a domU config with Xen's own parser (libxlutil, as `xl create`
 * does) and fail on anything it would not accept. The independent judge of every
 * config domuify's tests emit.
 *
 *   cc xlcheck.c $(pkg-config --cflags --libs xlutil xenlight) -o xlcheck
 *   xlcheck FILE
 *
 * Parses FILE with xlu_cfg_readfile, then reads every key the file sets with the
 * xlu_cfg_get_* call of its type (numbers with xlu_cfg_get_long, strings with
 * xlu_cfg_get_string, lists with xlu_cfg_get_list), runs xlu_disk_parse on each
 * disk spec and checks each vif spec's fields as xl reads them. Prints what the
 * parser returned, one `key<TAB>value` line each (list items as `key[i]`, disks
 * as `disk[i].field`), for the tests to compare. Exit 0 when all is accepted, 1
 * on any error (said on stderr), 2 on usage.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxl.h>
#include <libxlutil.h>

static const char *const longs[] = {"memory", "maxmem", "vcpus", "maxvcpus", NULL};
static const char *const strings[] = {"name", "type", "kernel", "ramdisk", "bootloader",
                                      "root", "extra", "cmdline", "dhcp", "on_poweroff",
                                      "on_reboot", "on_crash", NULL};
static const char *const lists[] = {"disk", "vif", NULL};

static int in(const char *const *set, const char *k)
{
    for (; *set; set++)
        if (!strcmp(*set, k))
            return 1;
    return 0;
}

/* Keys the file sets: an identifier at the start of a line, then `=`. */
static int keys_of(const char *file, char keys[][64], int max)
{
    FILE *f = fopen(file, "r");
    char line[8192];
    int n = 0;
    if (!f) {
        perror(file);
        exit(1);
    }
    while (fgets(line, sizeof line, f)) {
        char *p = line, *k;
        while (isspace((unsigned char)*p))
            p++;
        if (!(isalpha((unsigned char)*p) || *p == '_'))
            continue;
        k = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (p - k >= 64)
            continue;
        {
            char *q = p;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q != '=')
                continue;
        }
        if (n == max) {
            fprintf(stderr, "xlcheck: too many keys\n");
            exit(1);
        }
        memcpy(keys[n], k, p - k);
        keys[n][p - k] = 0;
        n++;
    }
    fclose(f);
    return n;
}

static int valid_mac(const char *m)
{
    int i;
    for (i = 0; i < 6; i++) {
        if (!isxdigit((unsigned char)m[0]) || !isxdigit((unsigned char)m[1]))
            return 0;
        m += 2;
        if (i < 5 && *m++ != ':')
            return 0;
    }
    return *m == 0;
}

/* A vif spec as xl's parse_nic_config reads it: KEY=VALUE pairs split at `,`. */
static int check_vif(const char *spec, int i)
{
    char *s = strdup(spec), *tok, *save = NULL;
    int bad = 0;
    for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        while (isspace((unsigned char)*tok))
            tok++;
        if (!eq) {
            fprintf(stderr, "xlcheck: vif[%d]: %s is not KEY=VALUE\n", i, tok);
            bad = 1;
            continue;
        }
        *eq = 0;
        if (!strcmp(tok, "mac")) {
            if (!valid_mac(eq + 1)) {
                fprintf(stderr, "xlcheck: vif[%d]: bad mac %s\n", i, eq + 1);
                bad = 1;
            }
        } else if (strcmp(tok, "bridge") && strcmp(tok, "ip") && strcmp(tok, "model") &&
                   strcmp(tok, "script") && strcmp(tok, "type") && strcmp(tok, "vifname") &&
                   strcmp(tok, "rate") && strcmp(tok, "backend")) {
            fprintf(stderr, "xlcheck: vif[%d]: unknown key %s\n", i, tok);
            bad = 1;
        }
        printf("vif[%d].%s\t%s\n", i, tok, eq + 1);
    }
    free(s);
    return bad;
}

int main(int argc, char **argv)
{
    static char keys[256][64];
    XLU_Config *cfg;
    int nkeys, i, bad = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: xlcheck FILE\n");
        return 2;
    }
    cfg = xlu_cfg_init(stderr, argv[1]);
    if (!cfg) {
        perror("xlu_cfg_init");
        return 1;
    }
    if (xlu_cfg_readfile(cfg, argv[1])) {
        fprintf(stderr, "xlcheck: %s: xlu_cfg_readfile failed\n", argv[1]);
        return 1;
    }
    nkeys = keys_of(argv[1], keys, 256);
    for (i = 0; i < nkeys; i++) {
        const char *k = keys[i];
        if (in(longs, k)) {
            long v;
            if (xlu_cfg_get_long(cfg, k, &v, 0)) {
                fprintf(stderr, "xlcheck: %s: not a number\n", k);
                bad = 1;
            } else
                printf("%s\t%ld\n", k, v);
        } else if (in(strings, k)) {
            const char *v;
            if (xlu_cfg_get_string(cfg, k, &v, 0)) {
                fprintf(stderr, "xlcheck: %s: not a string\n", k);
                bad = 1;
            } else
                printf("%s\t%s\n", k, v);
        } else if (in(lists, k)) {
            XLU_ConfigList *l;
            int n, j;
            if (xlu_cfg_get_list(cfg, k, &l, &n, 0)) {
                fprintf(stderr, "xlcheck: %s: not a list\n", k);
                bad = 1;
                continue;
            }
            printf("%s.count\t%d\n", k, n);
            for (j = 0; j < n; j++) {
                const char *item = xlu_cfg_get_listitem(l, j);
                if (!item) {
                    fprintf(stderr, "xlcheck: %s[%d]: not a string\n", k, j);
                    bad = 1;
                    continue;
                }
                printf("%s[%d]\t%s\n", k, j, item);
                if (!strcmp(k, "disk")) {
                    libxl_device_disk d;
                    libxl_device_disk_init(&d);
                    if (xlu_disk_parse(cfg, 1, &item, &d)) {
                        fprintf(stderr, "xlcheck: disk[%d]: xlu_disk_parse refused %s\n", j, item);
                        bad = 1;
                    } else {
                        printf("disk[%d].target\t%s\n", j, d.pdev_path ? d.pdev_path : "");
                        printf("disk[%d].vdev\t%s\n", j, d.vdev ? d.vdev : "");
                        printf("disk[%d].access\t%s\n", j, d.readwrite ? "rw" : "ro");
                        printf("disk[%d].format\t%s\n", j, libxl_disk_format_to_string(d.format));
                        printf("disk[%d].cdrom\t%d\n", j, d.is_cdrom);
                    }
                    libxl_device_disk_dispose(&d);
                } else if (!strcmp(k, "vif")) {
                    bad |= check_vif(item, j);
                }
            }
        } else {
            fprintf(stderr, "xlcheck: unknown key %s\n", k);
            bad = 1;
        }
    }
    xlu_cfg_destroy(cfg);
    return bad;
}
