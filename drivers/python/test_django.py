"""Django ORM smoke suite (Django 5.2, psycopg 3).

Runs against PostgreSQL and against Strata (cli/tests/e2e/drivers.rs). `migrate` creates the
contrib apps' tables and the smoke models' (run_syncdb: the schema editor's CREATE TABLE,
constraints and indexes, Django's bulk inserts through UNNEST); the ORM then relies on the
expression and partial unique constraints, the generated field, JSON lookups and GROUP BY the
primary key.
"""

import datetime
from decimal import Decimal

import django
import pytest
from django.conf import settings

from conftest import url_parts

parts = url_parts()
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_smoke"],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts["database"],
            "USER": parts["user"],
            "HOST": parts["host"],
            "PORT": parts["port"],
        }
    },
    MIGRATION_MODULES={"django_smoke": None},
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, transaction  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402
from django.db.models.functions import Lower  # noqa: E402

from django_smoke.models import Author, Book  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def migrated():
    call_command("migrate", run_syncdb=True, verbosity=0)


def test_contrib_tables_are_filled():
    from django.contrib.auth.models import Permission

    assert Permission.objects.filter(codename="add_author").exists()


def test_constraints_hold():
    ann = Author.objects.create(email="Ann@x.com", name="ann", meta={"k": [1, 2]})
    with pytest.raises(IntegrityError, match="author_email_ci"):
        with transaction.atomic():
            Author.objects.create(email="ann@X.COM", name="other")
    with pytest.raises(IntegrityError, match="author_live_name"):
        with transaction.atomic():
            Author.objects.create(email="b@x.com", name="ann")
    with pytest.raises(IntegrityError, match="author_name_nonempty"):
        with transaction.atomic():
            Author.objects.create(email="c@x.com", name="")
    # Once deleted, the name is free again.
    ann.deleted_at = datetime.datetime.now(datetime.timezone.utc)
    ann.save()
    Author.objects.create(email="b@x.com", name="ann")


def test_generated_field_and_queries():
    author = Author.objects.get(email="b@x.com")
    book = Book.objects.create(author=author, title="T", price=Decimal("2.50"), qty=4)
    book.refresh_from_db()
    assert book.total == Decimal("10.00")
    Book.objects.filter(id=book.id).update(qty=10)
    book.refresh_from_db()
    assert book.total == Decimal("25.00")
    counts = list(
        Author.objects.annotate(n=Count("books")).order_by("id").values_list("email", "n")
    )
    assert counts == [("Ann@x.com", 0), ("b@x.com", 1)]
    assert Book.objects.aggregate(s=Sum("total")) == {"s": Decimal("25.00")}
    assert Author.objects.filter(meta__k__contains=1).count() == 1
    assert Author.objects.filter(meta__has_key="k").count() == 1
    assert Author.objects.order_by(Lower("email")).first().email == "Ann@x.com"
    # Deleting the author cascades (Django's collector) to its books.
    author.delete()
    assert Book.objects.count() == 0
