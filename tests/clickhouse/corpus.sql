-- basics
SELECT count() AS n FROM orders;
SELECT count(*) AS n FROM orders;
SELECT count() FROM orders WHERE org_id = 'acme';
SELECT org_id, count() AS n FROM orders GROUP BY org_id ORDER BY org_id;
SELECT org_id, org_name, plan FROM orgs ORDER BY org_id;
SELECT * FROM orgs ORDER BY org_id;
SELECT * FROM products WHERE org_id = 'globex' ORDER BY product_id;
SELECT order_id, org_id, ts, day, customer, product_id, quantity, amount FROM orders ORDER BY order_id LIMIT 5;
SELECT DISTINCT category FROM products ORDER BY category;
SELECT DISTINCT org_id, category FROM products ORDER BY org_id, category;
SELECT o.order_id, o.amount FROM orders AS o ORDER BY o.order_id DESC LIMIT 3;
SELECT org_id AS o, count() AS c FROM orders GROUP BY o ORDER BY c DESC;
-- where
SELECT count() AS n FROM orders WHERE amount > 100 AND quantity >= 2;
SELECT count() AS n FROM orders WHERE amount BETWEEN 50 AND 60;
SELECT count() AS n FROM orders WHERE amount NOT BETWEEN 50 AND 60;
SELECT count() AS n FROM orders WHERE org_id IN ('acme', 'initech');
SELECT count() AS n FROM orders WHERE product_id NOT IN (1, 2, 3);
SELECT count() AS n FROM orders WHERE customer = 'Ada' OR customer = 'Grace';
SELECT count() AS n FROM orders WHERE NOT (quantity = 1);
SELECT count() AS n FROM orders WHERE org_id != 'acme';
SELECT count() AS n FROM orders WHERE org_id <> 'acme' AND product_id > 10;
SELECT count() AS n FROM orders PREWHERE org_id = 'globex' WHERE quantity = 4;
-- literals and types
SELECT 1 AS a, -1 AS b, 300 AS c, 70000 AS d, 5000000000 AS e, 1.5 AS f, 'x' AS g, true AS h;
SELECT 1 + 1 AS a, 255 + 1 AS b, 1 - 2 AS c, 2 * 3 AS d, -5 AS e;
SELECT 7 / 2 AS a, 1 / 4 AS b, 10 / 5 AS c;
SELECT intDiv(7, 2) AS a, intDiv(-7, 2) AS b, 7 % 3 AS c, -7 % 2 AS d;
SELECT quantity + 1 AS a, quantity * 2 AS b, quantity - 1 AS c FROM orders ORDER BY order_id LIMIT 3;
SELECT product_id + quantity AS a, order_id + 1 AS b FROM orders ORDER BY order_id LIMIT 3;
SELECT amount / quantity AS a FROM orders ORDER BY order_id LIMIT 5;
SELECT intDiv(order_id, 1000) AS bucket, count() AS n FROM orders GROUP BY bucket ORDER BY bucket LIMIT 5;
SELECT order_id % 7 AS r, count() AS n FROM orders GROUP BY r ORDER BY r;
SELECT abs(-3) AS a, abs(-2.5) AS b, abs(quantity - 3) AS c FROM orders ORDER BY order_id LIMIT 4;
SELECT greatest(1, 2.5) AS a, least(3, 2) AS b, greatest(quantity, 2) AS c FROM orders ORDER BY order_id LIMIT 4;
SELECT round(2.5) AS a, round(3.5) AS b, round(2.675, 2) AS c, round(-2.5) AS d, round(123.456, 1) AS e;
SELECT floor(2.7) AS a, ceil(2.1) AS b, floor(-2.5) AS c, round(125, -1) AS d;
SELECT sqrt(16) AS a, pow(2, 10) AS b, exp(0) AS c, log(1) AS d, log10(100) AS e;
SELECT negate(3) AS a, sign(-4) AS b;
-- conditionals
SELECT if(quantity > 2, 'big', 'small') AS size, count() AS n FROM orders GROUP BY size ORDER BY size;
SELECT multiIf(amount < 50, 'low', amount < 150, 'mid', 'high') AS band, count() AS n FROM orders GROUP BY band ORDER BY band;
SELECT if(1 = 1, 1, 2.5) AS a, if(0, 'x', 'y') AS b;
SELECT CASE WHEN quantity = 1 THEN 'one' WHEN quantity = 2 THEN 'two' ELSE 'more' END AS q, count() AS n FROM orders GROUP BY q ORDER BY q;
SELECT CASE quantity WHEN 1 THEN 10 WHEN 2 THEN 20 ELSE 0 END AS q FROM orders ORDER BY order_id LIMIT 5;
SELECT ifNull(NULL, 1) AS a, coalesce(NULL, NULL, 'z') AS b, nullIf(1, 1) AS c, nullIf(1, 2) AS d;
SELECT isNull(NULL) AS a, isNotNull(1) AS b, NULL IS NULL AS c;
SELECT coalesce(nullIf(customer, 'Ada'), 'nobody') AS c, count() AS n FROM orders GROUP BY c ORDER BY c LIMIT 3;
-- strings
SELECT concat(customer, '-', org_id) AS k FROM orders ORDER BY order_id LIMIT 3;
SELECT concat('n', toString(quantity)) AS k FROM orders ORDER BY order_id LIMIT 3;
SELECT customer || '@' || org_id AS k FROM orders ORDER BY order_id LIMIT 3;
SELECT lower(customer) AS l, upper(customer) AS u FROM orders ORDER BY order_id LIMIT 3;
SELECT length('héllo') AS a, lengthUTF8('héllo') AS b, length(customer) AS c FROM orders ORDER BY order_id LIMIT 2;
SELECT substring('hello', 2, 3) AS a, substring('hello', -3) AS b, substring('hello', 0, 2) AS c, substring('hello', 2, -1) AS d;
SELECT substring(product_name, 1, 5) AS p FROM products WHERE org_id = 'acme' ORDER BY product_id;
SELECT position('hello', 'l') AS a, position('hello', 'z') AS b, positionCaseInsensitive('HELLO', 'l') AS c;
SELECT startsWith(product_name, 'Trail') AS s, endsWith(product_name, 'Shoes') AS e, product_name FROM products WHERE org_id = 'acme' ORDER BY product_id;
SELECT replaceAll('a-b-c', '-', '+') AS a, replaceOne('a-b-c', '-', '+') AS b;
SELECT trim('  x  ') AS a, trimLeft('  x  ') AS b, trimRight('  x  ') AS c;
SELECT splitByChar(',', 'a,b,,c') AS a, splitByString('--', 'x--y') AS b;
SELECT reverse('abc') AS a, repeat('ab', 3) AS b, leftPad('7', 3, '0') AS c, rightPad('7', 3, '*') AS d;
SELECT empty('') AS a, notEmpty('x') AS b, left('hello', 2) AS c, right('hello', 3) AS d;
SELECT category, count() AS n FROM products WHERE startsWith(category, 'ap') GROUP BY category ORDER BY category;
-- like
SELECT count() AS n FROM products WHERE product_name LIKE '%Shoes';
SELECT count() AS n FROM products WHERE product_name LIKE '%shoes';
SELECT count() AS n FROM products WHERE product_name ILIKE '%shoes';
SELECT count() AS n FROM products WHERE product_name NOT LIKE 'T%';
SELECT count() AS n FROM products WHERE product_name NOT ILIKE 't%';
SELECT 'abc' LIKE 'a_c' AS a, 'abc' LIKE 'A%' AS b, 'a%c' LIKE 'a\%c' AS c, 'abc' ILIKE 'AB_' AS d;
SELECT like(customer, 'A%') AS a, customer FROM orders ORDER BY order_id LIMIT 5;
-- regex
SELECT match('abc123', '[0-9]+') AS a, match('abc', '^b') AS b;
SELECT extract('abc123def', '[0-9]+') AS a, extract('abc123def', 'c([0-9])') AS b, extract('abc', 'z') AS c;
SELECT extractAll('a1b22c333', '[0-9]+') AS a, extractAll('a1b2', '([a-z])[0-9]') AS b;
SELECT replaceRegexpAll('aaa', 'a', 'b') AS a, replaceRegexpOne('aaa', 'a', 'b') AS b, replaceRegexpAll('2024-01-02', '(\\d+)-(\\d+)-(\\d+)', '\\3/\\2/\\1') AS c;
SELECT customer FROM orders WHERE match(customer, '^[AE]') GROUP BY customer ORDER BY customer;
-- json
SELECT JSONExtractString('{"a":"x","b":12}', 'a') AS a, JSONExtractInt('{"a":"x","b":12}', 'b') AS b, JSONExtractFloat('{"f":1.5}', 'f') AS c;
SELECT JSONExtractBool('{"t":true}', 't') AS a, JSONHas('{"a":1}', 'a') AS b, JSONHas('{"a":1}', 'z') AS c;
SELECT JSONExtractRaw('{"c":{"d":[1,2]}}', 'c') AS a, JSONExtractString('{"c":{"d":"z"}}', 'c', 'd') AS b;
SELECT JSONExtractInt('{"a":[10,20,30]}', 'a', 2) AS a, JSONExtractString('{}', 'missing') AS b, JSONExtractInt('{"x":12.7}', 'x') AS c;
SELECT JSONExtractString(concat('{"who":"', customer, '"}'), 'who') AS w FROM orders ORDER BY order_id LIMIT 3;
-- urls
SELECT domain('https://www.example.com:8080/a/b?x=1#f') AS a, domainWithoutWWW('https://www.example.com/a') AS b, path('https://example.com/a/b?x=1') AS c;
SELECT cutQueryString('https://example.com/a/b?x=1') AS a, protocol('https://x.com') AS b, queryString('http://a.com/p?x=1&y=2') AS c;
SELECT extractURLParameter('http://a.com/p?x=1&y=2', 'y') AS a, topLevelDomain('https://www.example.co.uk/') AS b, domain('example.com/path') AS c, path('https://example.com') AS d;
-- dates
SELECT toDate(ts) AS d, count() AS n FROM orders GROUP BY d ORDER BY d LIMIT 3;
SELECT toDate('2024-03-05') AS a, toDateTime('2024-03-05 07:08:09') AS b, toDate(toDateTime('2024-03-05 23:59:59')) AS c;
SELECT toStartOfHour(ts) AS h, count() AS n FROM orders WHERE org_id = 'acme' GROUP BY h ORDER BY h LIMIT 3;
SELECT toStartOfMinute(ts) AS a, toStartOfFiveMinutes(ts) AS b, toStartOfFifteenMinutes(ts) AS c, toStartOfTenMinutes(ts) AS d FROM orders ORDER BY order_id LIMIT 3;
SELECT toStartOfDay(ts) AS a, toStartOfDay(day) AS b FROM orders ORDER BY order_id LIMIT 3;
SELECT toStartOfWeek(day) AS w, count() AS n FROM orders GROUP BY w ORDER BY w LIMIT 3;
SELECT toMonday(day) AS w, count() AS n FROM orders GROUP BY w ORDER BY w LIMIT 3;
SELECT toStartOfMonth(day) AS m, count() AS n FROM orders GROUP BY m ORDER BY m;
SELECT toStartOfQuarter(day) AS q, toStartOfYear(day) AS y FROM orders ORDER BY order_id LIMIT 3;
SELECT toStartOfInterval(ts, INTERVAL 15 MINUTE) AS a, toStartOfInterval(ts, INTERVAL 2 HOUR) AS b, toStartOfInterval(ts, INTERVAL 1 DAY) AS c FROM orders ORDER BY order_id LIMIT 3;
SELECT toStartOfInterval(day, INTERVAL 1 WEEK) AS a, toStartOfInterval(day, INTERVAL 2 MONTH) AS b, toStartOfInterval(ts, INTERVAL 30 SECOND) AS c FROM orders ORDER BY order_id LIMIT 3;
SELECT toYear(day) AS y, toMonth(day) AS m, toDayOfMonth(day) AS d, toDayOfWeek(day) AS w, toDayOfYear(day) AS dy, toQuarter(day) AS q FROM orders ORDER BY order_id LIMIT 3;
SELECT toHour(ts) AS h, toMinute(ts) AS m, toSecond(ts) AS s FROM orders ORDER BY order_id LIMIT 3;
SELECT toYYYYMM(day) AS ym, count() AS n FROM orders GROUP BY ym ORDER BY ym;
SELECT toYYYYMMDD(day) AS ymd FROM orders ORDER BY order_id LIMIT 3;
SELECT toUnixTimestamp(ts) AS u FROM orders ORDER BY order_id LIMIT 3;
SELECT toUnixTimestamp(toDateTime('2024-01-01 00:00:00')) AS a, toDateTime(1704067200) AS b, toDate(19000) AS c;
SELECT formatDateTime(ts, '%Y-%m-%d %H:%i:%S') AS a, formatDateTime(day, '%d/%m/%Y') AS b FROM orders ORDER BY order_id LIMIT 3;
SELECT formatDateTime(toDateTime('2024-03-05 07:08:09'), '%F %T|%e|%j|%u|%w|%a|%b|%p|%I|%y|%Q|%D|%R|%M|%W') AS f;
SELECT EXTRACT(YEAR FROM day) AS y, EXTRACT(MONTH FROM day) AS m FROM orders ORDER BY order_id LIMIT 2;
SELECT today() - yesterday() AS a, toDate(now()) = today() AS b;
SELECT count() AS n FROM orders WHERE day >= today() - 7;
SELECT count() AS n FROM orders WHERE ts >= now() - INTERVAL 7 DAY;
SELECT count() AS n FROM orders WHERE day = yesterday();
SELECT count() AS n FROM orders WHERE day > '2000-01-01' AND ts < '2100-01-01 00:00:00';
SELECT count() AS n FROM orders WHERE ts >= toDate('2000-01-01');
SELECT min(day) = (SELECT min(day) FROM orders) AS a FROM orders;
-- intervals
SELECT toDate('2024-01-31') + INTERVAL 1 MONTH AS a, toDate('2024-01-31') + INTERVAL 1 HOUR AS b, toDate('2024-01-01') + 1 AS c;
SELECT toDateTime('2024-03-01 00:00:00') - INTERVAL 1 SECOND AS a, toDateTime('2024-03-01 00:00:00') + INTERVAL 2 WEEK AS b, toDate('2024-02-29') + INTERVAL 1 YEAR AS c;
SELECT toDate('2024-05-31') - INTERVAL 3 MONTH AS a, toDate('2024-05-31') + INTERVAL 1 QUARTER AS b;
SELECT ts + INTERVAL 90 MINUTE AS a, day - INTERVAL 1 DAY AS b, day + 10 AS c, ts - 60 AS d FROM orders ORDER BY order_id LIMIT 3;
SELECT toDate('2024-01-02') - toDate('2024-01-01') AS a, toDateTime('2024-01-01 00:01:00') - toDateTime('2024-01-01 00:00:00') AS b;
SELECT addDays(day, 3) AS a, subtractHours(ts, 2) AS b, addMonths(day, 1) AS c FROM orders ORDER BY order_id LIMIT 3;
SELECT dateAdd(DAY, 2, day) AS a, dateSub(HOUR, 1, ts) AS b, date_add(ts, INTERVAL 1 WEEK) AS c FROM orders ORDER BY order_id LIMIT 3;
-- datediff
SELECT dateDiff('day', toDate('2024-01-01'), toDate('2024-03-01')) AS a, dateDiff('month', toDate('2024-01-31'), toDate('2024-02-01')) AS b, dateDiff('hour', toDateTime('2024-01-01 10:59:00'), toDateTime('2024-01-01 11:00:00')) AS c;
SELECT dateDiff('week', toDate('2024-03-02'), toDate('2024-03-04')) AS a, dateDiff('year', toDate('2023-12-31'), toDate('2024-01-01')) AS b, dateDiff('minute', toDateTime('2024-01-01 00:00:59'), toDateTime('2024-01-01 00:01:00')) AS c;
SELECT dateDiff('second', toDateTime('2024-01-01 00:00:00'), toDateTime('2024-01-02 00:00:00')) AS a, date_diff('quarter', toDate('2024-01-01'), toDate('2024-12-31')) AS b;
SELECT dateDiff('day', day, toDate(ts)) AS d, count() AS n FROM orders GROUP BY d ORDER BY d;
SELECT max(dateDiff('day', day, today())) AS oldest FROM orders;
SELECT age('day', toDateTime('2024-01-01 12:00:00'), toDateTime('2024-01-03 11:00:00')) AS a, age('month', toDate('2024-01-31'), toDate('2024-02-29')) AS b;
-- conversions
SELECT toString(1.0) AS a, toString(0.1 + 0.2) AS b, toString(toDate('2024-01-01')) AS c, toString(true) AS d, toString(42) AS e;
SELECT toInt32(3.9) AS a, toInt32(-3.9) AS b, toUInt8(300) AS c, toInt8(200) AS d, toInt64('12') AS e, toUInt32('7') AS f;
SELECT toFloat64('1.5') AS a, toFloat32(2) AS b, toFloat64(quantity) AS c FROM orders ORDER BY order_id LIMIT 2;
SELECT toInt32OrZero('x') AS a, toInt32OrNull('x') AS b, toFloat64OrZero('y') AS c, toInt32OrZero('12') AS d;
SELECT CAST(quantity AS String) AS a, CAST('5' AS UInt8) AS b, CAST(amount AS Int64) AS c, amount::Int32 AS d FROM orders ORDER BY order_id LIMIT 3;
SELECT CAST('2024-01-01' AS Date) AS a, CAST('2024-01-01 10:00:00' AS DateTime) AS b, CAST(1 AS Float64) AS c, CAST(NULL AS Nullable(String)) AS d;
SELECT toTypeName(quantity) AS a, toTypeName(amount) AS b, toTypeName(ts) AS c, toTypeName(count()) AS d FROM orders;
-- aggregates
SELECT sum(quantity) AS q, sum(amount) AS a, avg(amount) AS av, min(amount) AS mn, max(amount) AS mx FROM orders;
SELECT org_id, sum(quantity) AS q, round(sum(amount), 2) AS a, round(avg(amount), 4) AS av FROM orders GROUP BY org_id ORDER BY org_id;
SELECT min(ts) AS a, max(ts) AS b, min(day) AS c, max(customer) AS d FROM orders;
SELECT uniq(customer) AS a, uniqExact(customer) AS b, uniqExact(order_id) AS c, count(DISTINCT product_id) AS d FROM orders;
SELECT org_id, uniq(customer, product_id) AS u FROM orders GROUP BY org_id ORDER BY org_id;
SELECT argMax(order_id, ts) AS a, argMin(order_id, ts) AS b FROM orders WHERE org_id = 'acme' AND order_id < 200;
SELECT org_id, argMax(order_id, amount * 1000000 + order_id) AS best FROM orders GROUP BY org_id ORDER BY org_id;
SELECT arraySort(groupArray(product_id)) AS ids FROM products WHERE org_id = 'acme';
SELECT arraySort(groupUniqArray(category)) AS c FROM products;
SELECT org_id, toUInt64(sumSimpleState(quantity)) AS q, toString(minSimpleState(customer)) AS a, toString(maxSimpleState(customer)) AS b FROM orders GROUP BY org_id ORDER BY org_id;
SELECT org_id, toString(anySimpleState(org_id)) AS a, toString(anyLastSimpleState(org_id)) AS b FROM orders GROUP BY org_id ORDER BY org_id;
SELECT org_id, uniqMerge(s) AS u, countMerge(c) AS n, sumMerge(q) AS q, minMerge(lo) AS lo, maxMerge(hi) AS hi FROM (SELECT org_id, day, uniqState(customer) AS s, countState() AS c, sumState(quantity) AS q, minState(amount) AS lo, maxState(ts) AS hi FROM orders GROUP BY org_id, day) GROUP BY org_id ORDER BY org_id;
SELECT uniqExactMerge(m) AS u, countMerge(n) AS c FROM (SELECT org_id, uniqExactMergeState(s) AS m, countMergeState(c) AS n FROM (SELECT org_id, day, uniqExactState(customer, product_id) AS s, countState(customer) AS c FROM orders GROUP BY org_id, day) GROUP BY org_id);
SELECT groupArray(org_id) AS g FROM (SELECT org_id FROM orgs ORDER BY org_id);
SELECT topK(3)(product_id) AS t FROM orders;
SELECT org_id, topK(2)(product_id) AS t FROM orders GROUP BY org_id ORDER BY org_id;
SELECT round(stddevPop(amount), 6) AS a, round(stddevSamp(amount), 6) AS b, round(varPop(amount), 4) AS c, round(varSamp(amount), 4) AS d FROM orders;
SELECT varSamp(x) AS v, stddevSamp(x) AS s FROM (SELECT 1 AS x);
SELECT sum(x) AS s, min(x) AS mn, count() AS c FROM (SELECT quantity AS x FROM orders WHERE order_id < 0);
SELECT avg(quantity) AS a, sum(amount) AS s FROM orders WHERE 0;
-- combinators
SELECT countIf(amount > 100) AS a, sumIf(quantity, org_id = 'acme') AS b, avgIf(amount, quantity = 1) AS c FROM orders;
SELECT org_id, countIf(quantity = 4) AS q4, round(sumIf(amount, product_id = 1), 2) AS p1, uniqIf(customer, amount > 300) AS u FROM orders GROUP BY org_id ORDER BY org_id;
SELECT minIf(amount, quantity = 2) AS a, maxIf(amount, quantity = 2) AS b, argMaxIf(order_id, amount, org_id = 'initech' AND order_id < 500) AS c FROM orders;
SELECT sumDistinct(quantity) AS a, countIf(1) AS b, countIf(customer = 'Nobody') AS c FROM orders;
-- quantiles
SELECT quantile(0.5)(amount) AS q FROM orders WHERE org_id = 'initech' AND product_id = 5;
SELECT product_id, quantile(0.9)(amount) AS p90, median(quantity) AS m FROM orders WHERE org_id = 'globex' AND day = (SELECT max(day) FROM orders) GROUP BY product_id ORDER BY product_id;
SELECT quantiles(0.25, 0.5, 0.75)(amount) AS q FROM orders WHERE org_id = 'acme' AND product_id = 9;
SELECT quantileExact(0.5)(quantity) AS a, quantileExact(0.9)(amount) AS b FROM orders;
SELECT quantile(0.3)(x) AS a, quantile(0.25)(x) AS b, median(x) AS c FROM (SELECT arrayJoin([1, 2, 3, 4, 10]) AS x);
-- group by and having
SELECT org_id, product_id, count() AS n FROM orders GROUP BY org_id, product_id HAVING n > 2000 ORDER BY org_id, product_id;
SELECT customer, count() AS n FROM orders GROUP BY customer HAVING count() > 1990 ORDER BY customer;
SELECT toYear(day) * 100 + toMonth(day) AS ym, count() AS n FROM orders GROUP BY ym ORDER BY ym;
SELECT org_id, count() AS n FROM orders GROUP BY 1 ORDER BY 2 DESC;
SELECT quantity, round(sum(amount) / count(), 4) AS avg_amount FROM orders GROUP BY quantity ORDER BY quantity;
SELECT category, count() AS n FROM orders AS o JOIN products AS p ON p.org_id = o.org_id AND p.product_id = o.product_id GROUP BY category ORDER BY n DESC;
-- order by and limit
SELECT order_id FROM orders ORDER BY amount DESC, order_id LIMIT 5;
SELECT order_id FROM orders ORDER BY order_id LIMIT 3 OFFSET 10;
SELECT order_id FROM orders ORDER BY order_id LIMIT 10, 3;
SELECT org_id, product_id, count() AS n FROM orders GROUP BY org_id, product_id ORDER BY org_id, n DESC, product_id LIMIT 2 BY org_id;
SELECT org_id, customer, sum(amount) AS s FROM orders GROUP BY org_id, customer ORDER BY s DESC, customer LIMIT 1 BY org_id;
SELECT org_id, order_id FROM orders ORDER BY org_id, order_id DESC LIMIT 2 BY org_id;
SELECT x FROM (SELECT arrayJoin([3, NULL, 1]) AS x) ORDER BY x;
SELECT x FROM (SELECT arrayJoin([3, NULL, 1]) AS x) ORDER BY x DESC;
SELECT x FROM (SELECT arrayJoin([3, NULL, 1]) AS x) ORDER BY x NULLS FIRST;
SELECT product_name FROM products WHERE org_id = 'acme' ORDER BY product_name;
-- joins
SELECT o.order_id, p.product_name FROM orders AS o JOIN products AS p ON p.org_id = o.org_id AND p.product_id = o.product_id ORDER BY o.order_id LIMIT 5;
SELECT o.order_id, g.plan FROM orders AS o INNER JOIN orgs AS g ON g.org_id = o.org_id ORDER BY o.order_id LIMIT 3;
SELECT g.org_id, count(o.order_id) AS n FROM orgs AS g LEFT JOIN orders AS o ON o.org_id = g.org_id GROUP BY g.org_id ORDER BY g.org_id SETTINGS join_use_nulls = 1;
SELECT g.org_id, o.order_id, o.customer FROM orgs AS g LEFT JOIN (SELECT * FROM orders WHERE org_id = 'acme' AND order_id < 50) AS o ON o.org_id = g.org_id ORDER BY g.org_id, o.order_id SETTINGS join_use_nulls = 1;
SELECT g.org_id, count(o.order_id) AS n, sum(o.amount) AS s FROM orgs AS g LEFT JOIN (SELECT * FROM orders WHERE org_id = 'globex') AS o ON o.org_id = g.org_id GROUP BY g.org_id ORDER BY g.org_id SETTINGS join_use_nulls = 1;
SELECT org_id, plan, count() AS n FROM orders JOIN orgs USING (org_id) GROUP BY org_id, plan ORDER BY org_id;
SELECT count() AS n FROM orders AS o CROSS JOIN orgs AS g WHERE g.org_id = 'acme' AND o.order_id < 10;
SELECT p.category, round(sum(o.amount), 2) AS revenue FROM orders AS o JOIN products AS p ON p.org_id = o.org_id AND p.product_id = o.product_id WHERE o.org_id = 'acme' GROUP BY p.category ORDER BY revenue DESC;
-- subqueries
SELECT count() AS n FROM orders WHERE amount > (SELECT avg(amount) FROM orders);
SELECT org_id, n FROM (SELECT org_id, count() AS n FROM orders GROUP BY org_id) ORDER BY n;
SELECT org_name FROM orgs WHERE org_id IN (SELECT org_id FROM orders WHERE amount > 400) ORDER BY org_name;
SELECT org_name FROM orgs WHERE org_id NOT IN (SELECT org_id FROM orders WHERE product_id = 12 AND quantity = 4 AND org_id = 'acme') ORDER BY org_name;
SELECT (SELECT count() FROM orgs) AS a, (SELECT max(product_id) FROM products) AS b;
SELECT org_id, (SELECT count() FROM products AS p WHERE p.org_id = g.org_id) AS n FROM orgs AS g ORDER BY org_id;
SELECT EXISTS (SELECT 1 FROM orders WHERE quantity = 4) AS e;
-- ctes
WITH big AS (SELECT * FROM orders WHERE amount > 300) SELECT org_id, count() AS n FROM big GROUP BY org_id ORDER BY org_id;
WITH a AS (SELECT org_id, count() AS n FROM orders GROUP BY org_id), b AS (SELECT org_id, n * 2 AS m FROM a) SELECT org_id, m FROM b ORDER BY org_id;
WITH daily AS (SELECT day, count() AS n FROM orders GROUP BY day) SELECT max(n) AS peak, min(n) AS low FROM daily;
WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 5) SELECT count() AS n FROM r;
-- union
SELECT org_id FROM orgs UNION ALL SELECT org_id FROM orgs;
SELECT org_id FROM orgs UNION DISTINCT SELECT org_id FROM products;
SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2 AS x) ORDER BY x DESC;
-- windows
SELECT org_id, n, row_number() OVER (ORDER BY n DESC) AS r FROM (SELECT org_id, count() AS n FROM orders GROUP BY org_id) ORDER BY r;
SELECT org_id, product_id, n, rank() OVER (PARTITION BY org_id ORDER BY n DESC) AS r FROM (SELECT org_id, product_id, count() AS n FROM orders GROUP BY org_id, product_id) ORDER BY org_id, r, product_id LIMIT 6;
SELECT product_id, dense_rank() OVER (ORDER BY category) AS r FROM products WHERE org_id = 'acme' ORDER BY product_id;
SELECT day, n, sum(n) OVER (ORDER BY day) AS running FROM (SELECT day, count() AS n FROM orders GROUP BY day) ORDER BY day LIMIT 5;
SELECT org_id, day, n, avg(n) OVER (PARTITION BY org_id ORDER BY day ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS ma FROM (SELECT org_id, day, count() AS n FROM orders GROUP BY org_id, day) ORDER BY org_id, day LIMIT 5;
SELECT org_id, count() OVER () AS total, max(n) OVER (PARTITION BY org_id) AS mx FROM (SELECT org_id, product_id, count() AS n FROM orders GROUP BY org_id, product_id) ORDER BY org_id LIMIT 1 BY org_id;
SELECT product_id, first_value(product_name) OVER (PARTITION BY category ORDER BY product_id) AS f FROM products WHERE org_id = 'globex' ORDER BY product_id;
-- arrays
SELECT [1, 2, 3] AS a, ['x', 'y'] AS b, [] AS c, [1.5, 2] AS d;
SELECT has([1, 2], 2) AS a, has(['a'], 'b') AS b, indexOf([5, 6, 7], 7) AS c, length([1, 2, 3]) AS d;
SELECT [1, 2, 3][2] AS a, [1, 2, 3][5] AS b, ['a'][3] AS c, [10, 20, 30][-1] AS d;
SELECT arrayElement(['p', 'q'], 1) AS a, empty([]) AS b, notEmpty([1]) AS c;
SELECT hasAny([1, 2], [2, 3]) AS a, hasAll([1, 2, 3], [1, 3]) AS b, hasAll([1], [1, 4]) AS c;
SELECT arraySort([3, 1, 2]) AS a, arrayReverseSort([3, 1, 2]) AS b, arrayDistinct([1, 1, 2]) AS c, arrayReverse([1, 2]) AS d;
SELECT arrayConcat([1, 2], [3]) AS a, arraySlice([1, 2, 3, 4], 2, 2) AS b, arrayStringConcat(['a', 'b'], '-') AS c;
SELECT count() AS n FROM orders WHERE has([1, 2, 3], product_id);
SELECT product_id FROM products WHERE org_id = 'acme' AND has(['gear', 'bags'], category) ORDER BY product_id;
SELECT arrayJoin([1, 2, 3]) AS x ORDER BY x;
SELECT org_id, arrayJoin(['a', 'b']) AS tag FROM orgs ORDER BY org_id, tag;
SELECT tag, count() AS n FROM (SELECT arrayJoin(splitByChar(' ', product_name)) AS tag FROM products WHERE org_id = 'acme') GROUP BY tag ORDER BY n DESC, tag LIMIT 5;
SELECT length(splitByChar(' ', product_name)) AS words, count() AS n FROM products GROUP BY words ORDER BY words;
-- nulls
SELECT NULL AS a, NULL + 1 AS b, concat('a', NULL) AS c;
SELECT count(x) AS c, sum(x) AS s FROM (SELECT nullIf(quantity, 1) AS x FROM orders);
SELECT max(x) AS m FROM (SELECT nullIf(quantity, 4) AS x FROM orders);
SELECT toNullable(1) AS a, assumeNotNull(toNullable(2)) AS b, ifNull(nullIf(customer, 'Ada'), '-') AS c FROM orders ORDER BY order_id LIMIT 3;
-- format and settings
SELECT count() AS n FROM orders SETTINGS max_threads = 1;
SELECT org_id FROM orgs ORDER BY org_id SETTINGS max_execution_time = 10, max_threads = 2;
-- refused: numbers
SELECT * FROM numbers(10);
-- refused: arrayMap
SELECT arrayMap(x -> x * 2, [1, 2]) AS a;
-- refused: quantileState
SELECT quantileState(amount) FROM orders;
-- refused: ASOF
SELECT count() FROM orders AS o ASOF JOIN orders AS p ON o.org_id = p.org_id AND o.ts >= p.ts;
-- refused: time zones
SELECT toDateTime('2024-01-01 00:00:00', 'Europe/Madrid') AS t;
-- refused: WITH FILL
SELECT day FROM orders GROUP BY day ORDER BY day WITH FILL;
-- refused: tuples
SELECT (1, 2) AS t;
-- refused: Decimal
SELECT CAST(1 AS Decimal(10, 2)) AS d;
-- refused: lagInFrame
SELECT lagInFrame(order_id) OVER (ORDER BY order_id) AS p FROM orders LIMIT 1;
-- refused: join_use_nulls
SELECT g.org_id, o.order_id FROM orgs AS g LEFT JOIN orders AS o ON o.org_id = g.org_id ORDER BY o.order_id LIMIT 1 SETTINGS join_use_nulls = 0;
-- refused: GROUP BY modifiers
SELECT org_id, count() FROM orders GROUP BY org_id WITH TOTALS;
