<?php
// What the pool gives this request: its environment (from the topology's
// products.shop.php.env) and the release the code runs from.
header('Content-Type: text/plain; charset=utf-8');
echo "env " . getenv('APP_ENV') . "\n";
echo "release " . basename(dirname(__DIR__)) . "\n";
