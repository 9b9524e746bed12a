<?php
// The demo's shop: proves that Apache ran PHP through the product's PHP-FPM
// pool, that sessions live in memcached, and which database master the
// agent configured (from the app config it rendered).

// The agent renders /etc/nodeagent/products/shop.php under its service root;
// in the demo that root is a directory, so look upwards from the release.
function shop_config(): array
{
    $dir = __DIR__;
    for ($i = 0; $i < 12; $i++) {
        $file = $dir . '/etc/nodeagent/products/shop.php';
        if (is_file($file)) {
            return ['file' => $file, 'config' => require $file];
        }
        $parent = dirname($dir);
        if ($parent === $dir) {
            break;
        }
        $dir = $parent;
    }
    return ['file' => null, 'config' => []];
}

session_start();
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;

$found = shop_config();
$config = $found['config'];
$master = $config['database']['master'] ?? null;
$cache = array_map(fn ($s) => $s['ip'] . ':' . $s['port'], $config['cache']['servers'] ?? []);

header('Content-Type: text/plain; charset=utf-8');
echo "Welcome to the shop\n";
echo "\n";
echo "served by:      " . ($_SERVER['SERVER_SOFTWARE'] ?? 'unknown') . " + PHP " . PHP_VERSION . " (" . PHP_SAPI . ")\n";
echo "session:        visit " . $_SESSION['visits'] . " (save handler " . ini_get('session.save_handler') . " at " . ini_get('session.save_path') . ")\n";
if ($master !== null) {
    echo "database:       master " . $master['node'] . " (" . $master['ip'] . ":" . $master['port'] . "), database " . ($config['database']['name'] ?? '?') . "\n";
} else {
    echo "database:       no app config found\n";
}
echo "cache servers:  " . implode(', ', $cache) . "\n";
echo "app config:     " . ($found['file'] ?? 'none') . "\n";
echo "release:        " . basename(dirname(__DIR__)) . "\n";
