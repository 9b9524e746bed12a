<?php
// Shows the database master nodeagent configured for this product.
$config = require getenv('NODEAGENT_CONFIG');
$master = $config['database']['master'];
header('Content-Type: text/plain; charset=utf-8');
echo "master " . $master['node'] . " " . $master['ip'] . ":" . $master['port'] . "\n";
echo "database " . $config['database']['name'] . "\n";
