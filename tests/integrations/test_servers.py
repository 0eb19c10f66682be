"""The real-server fixtures themselves: each server starts, answers one query, and is ours.

Run without greensched: if these fail, the driver tests beside them say nothing.
"""

from __future__ import annotations

from tests.servers.real import Server


def test_postgres_answers(postgres_server: Server) -> None:
    import psycopg2

    with psycopg2.connect(postgres_server.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_setting('port')::int, current_database()")
        assert cur.fetchone() == (postgres_server.port, "postgres")
    conn.close()


def test_mariadb_answers(mariadb_server: Server) -> None:
    import pymysql

    conn = pymysql.connect(host=mariadb_server.host, port=mariadb_server.port, user="root", database="test")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@port, DATABASE()")
            assert cur.fetchone() == (mariadb_server.port, "test")
    finally:
        conn.close()


def test_redis_answers(redis_server: Server) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        assert int(client.config_get("port")["port"]) == redis_server.port
        assert client.set("greensched", "1") and client.get("greensched") == b"1"
    finally:
        client.close()
