<?php
// The e2e shop's home page: stores a fresh key in the product's memcached
// servers (read from the app config nodeagent rendered), reads it back, and
// shows where the pool keeps sessions. (It does not start a session: the
// pool's session.save_path names cache nodes that resolve through the
// node's /etc/hosts, and in a rooted test tree PHP resolves names through
// the machine's /etc/hosts instead.)
$config = require getenv('NODEAGENT_CONFIG');

$m = new Memcached();
foreach ($config['cache']['servers'] as $s) {
    $m->addServer($s['ip'], $s['port']);
}
$key = 'e2e-' . bin2hex(random_bytes(8));
$value = 'value-' . bin2hex(random_bytes(8));
if (!$m->set($key, $value, 300)) {
    http_response_code(503);
    echo "memcached set failed: " . $m->getResultMessage() . "\n";
    exit;
}
$got = $m->get($key);
if ($got !== $value) {
    http_response_code(503);
    echo "memcached get returned " . var_export($got, true) . ": " . $m->getResultMessage() . "\n";
    exit;
}

header('Content-Type: text/plain; charset=utf-8');
echo "Welcome to the e2e shop\n";
echo "stored " . $key . "=" . $got . "\n";
echo "session handler " . ini_get('session.save_handler') . "\n";
echo "session path " . ini_get('session.save_path') . "\n";
