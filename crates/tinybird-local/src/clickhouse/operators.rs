//! Operators: arithmetic with ClickHouse's result types, `/` as float division, `%` on
//! floats, comparisons that read strings as dates where a date is compared, `LIKE` and
//! `ILIKE` with ClickHouse's case rules, `IS NULL`, `NOT` and unary minus.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

use super::TranslateError;
use super::emitted::{BOOL_TY, E, quote, value};
use super::translate::{Ctx, Ty, unsupported};
use super::types::{self, Arith, ChType};

impl Ctx<'_> {
    pub(super) fn postfix(&mut self, e: &Expr, op: &str) -> Result<E, TranslateError> {
        let e = self.expr(e)?;
        let sql = format!("{} {op}", e.sql);
        Ok(E::from_parts(sql, Some(BOOL_TY), &[&e]))
    }

    pub(super) fn like(
        &mut self,
        func: &str,
        negated: bool,
        expr: &Expr,
        pattern: &Expr,
        extra: bool,
    ) -> Result<E, TranslateError> {
        if extra {
            return Err(unsupported("LIKE ESCAPE / LIKE ANY"));
        }
        let (e, p) = (self.expr(expr)?, self.expr(pattern)?);
        let not = if negated { "NOT " } else { "" };
        let sql = format!("{not}{func}({}, {})", e.sql, p.sql);
        let ty = BOOL_TY.nullable_if(&[e.ty.as_ref().unwrap_or(&BOOL_TY)]);
        Ok(E::from_parts(sql, Some(ty), &[&e, &p]))
    }

    pub(super) fn unary(&mut self, op: &UnaryOperator, inner: &Expr) -> Result<E, TranslateError> {
        // A negative number literal is one literal in ClickHouse (`-1` is Int8).
        if let (UnaryOperator::Minus, Expr::Value(v)) = (op, inner)
            && let Value::Number(n, _) = &v.value
        {
            return value(&Value::Number(format!("-{n}"), false));
        }
        let e = self.expr(inner)?;
        match op {
            UnaryOperator::Not => {
                let sql = format!("NOT {}", e.sql);
                Ok(E::from_parts(sql, Some(BOOL_TY), &[&e]))
            }
            UnaryOperator::Plus => Ok(e),
            UnaryOperator::Minus => {
                let ty = e.ty.as_ref().map(|t| match t.base() {
                    ChType::UInt(bits) => ChType::Int((bits * 2).min(64)).nullable_if(&[t]),
                    _ => t.clone(),
                });
                let sql = format!("-{}", e.sql);
                Ok(E::from_parts(sql, ty, &[&e]))
            }
            other => Err(unsupported(format!("the operator {other}"))),
        }
    }

    pub(super) fn binary(
        &mut self,
        l: &Expr,
        op: &BinaryOperator,
        r: &Expr,
    ) -> Result<E, TranslateError> {
        use BinaryOperator as B;
        if matches!(op, B::Plus | B::Minus)
            && let Some(e) = super::functions::dates::interval_arithmetic(self, l, op, r)?
        {
            return Ok(e);
        }
        let (a, b) = (self.expr(l)?, self.expr(r)?);
        let (a, b) = if matches!(op, B::Plus | B::Minus) {
            match super::functions::dates::temporal_arithmetic(a, b, matches!(op, B::Minus))? {
                Ok(e) => return Ok(e),
                Err(sides) => sides,
            }
        } else {
            (a, b)
        };
        let num = |t: &Ty| {
            t.as_ref()
                .is_none_or(|t| t.is_number() || *t == ChType::Nothing)
        };
        let sym = match op {
            B::And => "AND",
            B::Or => "OR",
            B::Eq => "=",
            B::NotEq => "<>",
            B::Lt => "<",
            B::LtEq => "<=",
            B::Gt => ">",
            B::GtEq => ">=",
            B::StringConcat => {
                return super::functions::call_scalar(self, "concat", vec![a, b]);
            }
            B::Divide => {
                let sql = format!("(CAST({} AS REAL) / {})", a.sql, b.sql);
                let ty = known2(&a, &b, |x, y| ChType::Float(64).nullable_if(&[x, y]));
                return Ok(E::from_parts(sql, ty, &[&a, &b]));
            }
            B::Plus | B::Minus | B::Multiply | B::Modulo => {
                if !(num(&a.ty) && num(&b.ty)) {
                    return Err(TranslateError::Invalid(format!(
                        "illegal types {} and {} for {op}",
                        show(&a.ty),
                        show(&b.ty)
                    )));
                }
                let arith = match op {
                    B::Minus => Arith::Minus,
                    B::Modulo => Arith::Keep,
                    _ => Arith::Widen,
                };
                let ty = known2(&a, &b, |x, y| match arith {
                    _ if *x == ChType::Nothing || *y == ChType::Nothing => ChType::Nothing,
                    Arith::Keep => modulo_type(x, y),
                    _ => types::arithmetic(arith, x, y),
                });
                let is_float = ty
                    .as_ref()
                    .is_some_and(|t| matches!(t.base(), ChType::Float(_)));
                let sql = if matches!(op, B::Modulo) && is_float {
                    format!("ch_fmod({}, {})", a.sql, b.sql)
                } else {
                    format!("({} {op} {})", a.sql, b.sql)
                };
                return Ok(E::from_parts(sql, ty, &[&a, &b]));
            }
            other => return Err(unsupported(format!("the operator {other}"))),
        };
        let (a, b) = if matches!(op, B::And | B::Or) {
            (a, b)
        } else {
            comparable(a, b)?
        };
        let sql = format!("{} {sym} {}", a.sql, b.sql);
        let ty = known2(&a, &b, |x, y| {
            if *x == ChType::Nothing || *y == ChType::Nothing {
                ChType::Nothing
            } else {
                BOOL_TY.nullable_if(&[x, y])
            }
        });
        Ok(E::from_parts(sql, ty.or(Some(BOOL_TY)), &[&a, &b]))
    }
}

/// Both types known: their combination.
pub fn known2(a: &E, b: &E, f: impl Fn(&ChType, &ChType) -> ChType) -> Ty {
    match (&a.ty, &b.ty) {
        (Some(x), Some(y)) => Some(f(x, y)),
        _ => None,
    }
}

/// `a % b` as ClickHouse types it: the divisor's width, signed when the dividend is.
fn modulo_type(a: &ChType, b: &ChType) -> ChType {
    let ty = match (a.base(), b.base()) {
        (ChType::Float(_), _) | (_, ChType::Float(_)) => ChType::Float(64),
        (ChType::Int(_), ChType::UInt(bits)) => ChType::Int((bits * 2).min(64)),
        (ChType::Int(_), ChType::Int(bits)) => ChType::Int(*bits),
        (_, ChType::UInt(bits) | ChType::Int(bits)) => ChType::UInt(*bits),
        _ => ChType::Int(64),
    };
    ty.nullable_if(&[a, b])
}

fn show(ty: &Ty) -> String {
    ty.as_ref().map_or("unknown".into(), ToString::to_string)
}

/// Makes two sides of a comparison comparable as ClickHouse compares them: a string (literal
/// or not) against a date is read as a date, a `Date` against a `DateTime` is widened, and
/// a string against a number is an error (ClickHouse has no common type for them).
pub fn comparable(a: E, b: E) -> Result<(E, E), TranslateError> {
    let (ta, tb) = (a.ty.clone(), b.ty.clone());
    let temporal = |t: &Ty| t.as_ref().is_some_and(ChType::is_temporal);
    let stringy =
        |e: &E| e.literal.is_some() || e.ty.as_ref().is_none_or(|t| *t.base() == ChType::String);
    if temporal(&ta) && !temporal(&tb) && stringy(&b) {
        return Ok((
            a.clone(),
            to_temporal(b, ta.as_ref().expect("known").base())?,
        ));
    }
    if temporal(&tb) && !temporal(&ta) && stringy(&a) {
        return Ok((
            to_temporal(a, tb.as_ref().expect("known").base())?,
            b.clone(),
        ));
    }
    if let (Some(x), Some(y)) = (&ta, &tb) {
        match (x.base(), y.base()) {
            (ChType::Date, ChType::DateTime) => {
                return Ok((to_temporal(a, &ChType::DateTime)?, b));
            }
            (ChType::DateTime, ChType::Date) => {
                return Ok((a, to_temporal(b, &ChType::DateTime)?));
            }
            (ChType::String, n) | (n, ChType::String) if n.is_number() => {
                return Err(TranslateError::Invalid(format!(
                    "cannot compare {x} with {y}: convert one side (toString, toInt64, ...)"
                )));
            }
            _ => {}
        }
    }
    Ok((a, b))
}

/// Reads `e` as a `Date`/`DateTime`: a literal is converted now (and must parse), anything
/// else at run time.
fn to_temporal(e: E, target: &ChType) -> Result<E, TranslateError> {
    let datetime = !matches!(target, ChType::Date);
    if let Some(text) = &e.literal {
        let parsed = super::sqlite::dates::parse_datetime(text)
            .ok_or_else(|| TranslateError::Invalid(format!("cannot parse '{text}' as {target}")))?;
        let canonical = if datetime {
            parsed.format("%Y-%m-%d %H:%M:%S").to_string()
        } else {
            parsed.format("%Y-%m-%d").to_string()
        };
        return Ok(E::constant(quote(&canonical), target.clone()));
    }
    let func = if datetime {
        "ch_to_datetime"
    } else {
        "ch_to_date"
    };
    let sql = format!("{func}({})", e.sql);
    Ok(E {
        sql,
        ty: Some(target.clone()),
        ..e
    })
}
